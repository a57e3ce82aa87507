/**
 * Newline-delimited JSON over a byte stream, with a bound on line length so a
 * misbehaving peer cannot make the reader buffer without limit.
 *
 * @module
 */
import { MAX_LINE_BYTES } from "../protocol/envelope.ts";

/** Something bytes can be read from, one chunk at a time. */
export interface ByteSource {
  read(buffer: Uint8Array): Promise<number | null>;
}

/** Reads lines from a {@linkcode ByteSource}. */
export class LineReader {
  #source: ByteSource;
  #pending = new Uint8Array(0);
  #decoder = new TextDecoder();

  constructor(source: ByteSource) {
    this.#source = source;
  }

  /** The next line without its newline, or null at end of stream. */
  async next(): Promise<string | null> {
    const chunk = new Uint8Array(64 * 1024);
    while (true) {
      const newline = this.#pending.indexOf(0x0a);
      if (newline >= 0) {
        const line = this.#pending.subarray(0, newline);
        this.#pending = this.#pending.slice(newline + 1);
        return this.#decoder.decode(line);
      }
      if (this.#pending.byteLength > MAX_LINE_BYTES) {
        throw new Error(
          `Cannot read message: line exceeds ${MAX_LINE_BYTES} bytes`,
        );
      }
      const n = await this.#source.read(chunk);
      if (n === null || n === 0) {
        if (this.#pending.byteLength === 0) return null;
        const rest = this.#pending;
        this.#pending = new Uint8Array(0);
        return this.#decoder.decode(rest);
      }
      const joined = new Uint8Array(this.#pending.byteLength + n);
      joined.set(this.#pending);
      joined.set(chunk.subarray(0, n), this.#pending.byteLength);
      this.#pending = joined;
    }
  }
}

/** Encodes one message as a JSON line. */
export function encodeLine(message: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(message) + "\n");
}
