// The end of every bench child process (upstream, plain-yoga reference): listen on loopback,
// print "READY <port>" for the parent, and stop on SIGTERM/SIGINT or when the parent goes away.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export function serveAsChild(server: Server, port: number): void {
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`READY ${(server.address() as AddressInfo).port}\n`);
  });
  const stop = () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // A vanished parent (closed stdin) stops us too.
  process.stdin.on('end', stop);
  process.stdin.resume();
}
