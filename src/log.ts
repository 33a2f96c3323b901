// JSON lines on stdout (or any sink), one named logger per component.
// Values are redacted before they are written: no token, secret or key reaches a log line.
import type { LogLevel } from './config.js';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** whether a line of this level is written: skip building fields for one that is not */
  enabled(level: LogLevel): boolean;
  child(name: string): Logger;
}

export type LogSink = (line: string) => void;

// Field names whose values are never logged, whatever the level.
const SECRET_KEY = /authorization|cookie|token|secret|password|api[-_]?key|credential|^key$|signature/i;
// Values that look like a hub API key or a bearer token are masked even under an innocent name.
const SECRET_VALUE = /\b(thub_[A-Za-z0-9]{20,}|Bearer\s+\S+)/g;

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6) return '[depth]';
  if (typeof value === 'string') return value.replace(SECRET_VALUE, '[redacted]');
  if (value instanceof Error) {
    return { name: value.name, message: redact(value.message, depth + 1), code: (value as { code?: unknown }).code };
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? '[redacted]' : redact(v, depth + 1);
    return out;
  }
  return value;
}

export function createLogger(level: LogLevel, sink: LogSink = (line) => process.stdout.write(line + '\n'), name = 'hub'): Logger {
  const min = ORDER[level];
  const write = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    const entry = { time: new Date().toISOString(), level: lvl, logger: name, msg: redact(msg), ...(fields ? (redact(fields) as object) : {}) };
    sink(JSON.stringify(entry));
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    enabled: (lvl) => ORDER[lvl] >= min,
    child: (child) => createLogger(level, sink, `${name}.${child}`),
  };
}
