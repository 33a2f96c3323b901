// W3C Trace Context (traceparent): a called system sees the caller's trace, with the hub's call
// as the parent span. An absent or malformed incoming header starts a new trace.
import { randomHex } from '../utils/random-hex.js';

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

export interface TraceContext {
  traceId: string;
  flags: string;
}

/** The trace of an incoming request (header value or null). */
export function traceOf(header: string | null | undefined): TraceContext {
  const m = header ? TRACEPARENT.exec(header.trim().toLowerCase()) : null;
  // Version ff is invalid; all-zero ids are invalid (W3C Trace Context 3.2.2).
  if (m && m[1] !== 'ff' && !/^0+$/.test(m[2]!) && !/^0+$/.test(m[3]!) && (m[1] !== '00' || m[5] === undefined)) {
    return { traceId: m[2]!, flags: m[4]! };
  }
  return { traceId: randomHex(16), flags: '01' };
}

/** The traceparent to send with one outgoing call: same trace, a new span id. */
export function childTraceparent(trace: TraceContext): string {
  return `00-${trace.traceId}-${randomHex(8)}-${trace.flags}`;
}
