/**
 * JSON-lines logging for the daemon and the helper: one object per line
 * with time, level, message and fields (the op id among them).
 *
 * @module
 */

export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A logger bound to a sink and a set of fields. */
export class Logger {
  constructor(
    readonly sink: (line: string) => void,
    readonly level: Level = "info",
    readonly fields: Record<string, unknown> = {},
  ) {}

  /** The same logger writing only lines at `level` or above. */
  withLevel(level: Level): Logger {
    return new Logger(this.sink, level, this.fields);
  }

  /** A logger that adds `fields` to every line. */
  with(fields: Record<string, unknown>): Logger {
    return new Logger(this.sink, this.level, { ...this.fields, ...fields });
  }

  debug(msg: string, fields?: Record<string, unknown>) {
    this.#write("debug", msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>) {
    this.#write("info", msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>) {
    this.#write("warn", msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>) {
    this.#write("error", msg, fields);
  }

  #write(level: Level, msg: string, fields?: Record<string, unknown>) {
    if (ORDER[level] < ORDER[this.level]) return;
    this.sink(JSON.stringify({
      time: new Date().toISOString(),
      level,
      msg,
      ...this.fields,
      ...fields,
    }));
  }
}

/** A logger writing to stderr (the daemon's stderr goes to its log file). */
export function stderrLogger(level: Level = "info"): Logger {
  const encoder = new TextEncoder();
  return new Logger(
    (line) => Deno.stderr.writeSync(encoder.encode(line + "\n")),
    level,
  );
}
