// COPY ... FROM STDIN on a pg client: node-postgres runs any object with submit() as a query and
// hands it the protocol's messages; this one answers the server's CopyInResponse with the whole
// text in one CopyData message. The same contract pg-copy-streams uses, without a stream per call.
import type pg from 'pg';

interface Connection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

class CopyIn {
  private settled = false;
  /** set by client.query(submittable, callback) */
  callback?: (error: Error | null) => void;

  constructor(
    private readonly sql: string,
    private readonly data: Buffer,
  ) {}

  submit(connection: Connection): void {
    connection.query(this.sql);
  }

  handleCopyInResponse(connection: Connection): void {
    connection.sendCopyFromChunk(this.data);
    connection.endCopyFrom();
  }

  // An ErrorResponse (the server refused a row) or a broken connection: settle at once, as pg's
  // own queries do; the ReadyForQuery that may follow finds it settled.
  handleError(error: Error): void {
    this.settle(error);
  }

  handleReadyForQuery(): void {
    this.settle(null);
  }

  handleCommandComplete(): void {}
  handleCopyData(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}

  private settle(error: Error | null) {
    if (this.settled) return;
    this.settled = true;
    this.callback?.(error);
  }
}

/** Runs `sql` (a COPY ... FROM STDIN) on the client with `text` as its data. */
export function copyIn(client: pg.ClientBase, sql: string, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const query = new CopyIn(sql, Buffer.from(text, 'utf8'));
    (client as unknown as { query(q: CopyIn, cb: (error: Error | null) => void): void }).query(query, (error) => (error ? reject(error) : resolve()));
  });
}
