/**
 * How the CLI talks to people: `banger: <message>` errors on stderr, colour
 * only on a terminal and never with NO_COLOR, and progress stages that
 * redraw one line on a terminal and print one line each elsewhere.
 *
 * @module
 */

const encoder = new TextEncoder();

/** True when stderr is a terminal and colour is not switched off. */
export function useColor(): boolean {
  return Deno.stderr.isTerminal() && Deno.env.get("NO_COLOR") === undefined;
}

/** Writes `banger: message` to stderr. */
export function printError(message: string): void {
  const prefix = useColor() ? "\x1b[1;31mbanger:\x1b[0m" : "banger:";
  Deno.stderr.writeSync(encoder.encode(`${prefix} ${message}\n`));
}

/** Writes a line to stderr (information that is not the command's output). */
export function note(message: string): void {
  Deno.stderr.writeSync(encoder.encode(`${message}\n`));
}

/** Writes text to stdout. */
export function out(text: string): void {
  const data = encoder.encode(text);
  let written = 0;
  while (written < data.byteLength) {
    written += Deno.stdout.writeSync(data.subarray(written));
  }
}

/** Shows named stages of long work. */
export class Progress {
  readonly #tty = Deno.stderr.isTerminal();
  readonly #start = performance.now();
  #stage = "";
  #stageStart = performance.now();
  #active = false;
  #detail = "";

  constructor(readonly quiet = false) {}

  /** Reports `stage` (and a detail line on a terminal). */
  update(stage: string, detail?: string): void {
    if (this.quiet) return;
    const changed = stage !== this.#stage;
    if (changed) {
      this.#finishLine();
      this.#stage = stage;
      this.#stageStart = performance.now();
    }
    if (this.#tty) {
      const width = Deno.consoleSize?.().columns ?? 80;
      const text = `  ${stage}${detail ? `: ${detail}` : ""}`.slice(
        0,
        width - 12,
      );
      Deno.stderr.writeSync(encoder.encode(`\r\x1b[2K${text}`));
      this.#active = true;
    } else if (changed || (detail && detail !== this.#detail)) {
      // Off a terminal each new detail gets its own line, so a log shows
      // what a long stage (an image build) was doing.
      note(`  ${stage}${detail ? `: ${detail}` : ""}`);
    }
    this.#detail = detail ?? "";
  }

  #finishLine(): void {
    if (!this.#active || !this.#stage) return;
    const seconds = ((performance.now() - this.#stageStart) / 1000).toFixed(1);
    Deno.stderr.writeSync(
      encoder.encode(`\r\x1b[2K  ${this.#stage} ${seconds}s\n`),
    );
    this.#active = false;
  }

  /** Ends the last stage line and prints `text` with the total time. */
  done(text: string): void {
    if (this.quiet) return;
    this.#finishLine();
    const seconds = ((performance.now() - this.#start) / 1000).toFixed(1);
    note(`${text} in ${seconds}s`);
  }

  /** Ends the last stage line without a summary. */
  stop(): void {
    this.#finishLine();
  }
}
