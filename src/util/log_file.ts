/**
 * A logger that appends JSON lines to a file (the auto-started daemon and
 * helper have no terminal and no journal).
 *
 * @module
 */
import { type Level, Logger, stderrLogger } from "./log.ts";

/**
 * Returns a logger appending to `path`, or writing to stderr when `path` is
 * undefined. Requires `--allow-write` for `path`.
 */
export function openLog(path: string | undefined, level: Level): Logger {
  if (!path) return stderrLogger(level);
  const file = Deno.openSync(path, { append: true, create: true, mode: 0o600 });
  const encoder = new TextEncoder();
  return new Logger(
    (line) => file.writeSync(encoder.encode(line + "\n")),
    level,
  );
}
