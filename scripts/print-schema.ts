// Writes schema.graphql from the code (`npm run schema:print`). A test fails when it is stale.
import { writeFile } from 'node:fs/promises';
import { printHubSchema } from '../src/schema/index.js';

await writeFile(new URL('../schema.graphql', import.meta.url), printHubSchema());
process.stdout.write('schema.graphql written\n');
