/**
 * A warm pool of taps: idle taps named `bgpool<n>`, already owned by the
 * owner uid and attached to the bridge, kept down. Claiming one is a single
 * `ip link set … name bgtap<slot> up` instead of create + attach + up.
 * The pool lives in the kernel, so a restarted helper adopts the taps it
 * finds.
 *
 * @module
 */
import type { Logger } from "../util/log.ts";
import { run } from "../util/exec.ts";
import { deleteTap, linkExists, NetworkStepError } from "./network.ts";
import { POOL_TAP_NAME } from "./validate.ts";

/** Most `ip` invocations a refill runs at once. */
export const REFILL_PARALLELISM = 2;

/** Options for {@linkcode TapPool}. */
export interface TapPoolOptions {
  /** Taps to keep warm (0 disables the pool). */
  size: number;
  /** The uid that owns every tap (the daemon's, which opens them). */
  owner: number;
  log: Logger;
  /** Most taps created at once while refilling. */
  parallelism?: number;
}

/** The warm tap pool of one helper. */
export class TapPool {
  /** Warm taps ready to claim, by name, with the bridge they sit on. */
  readonly #ready = new Map<string, string>();
  #refilling: Promise<void> | undefined;
  #again = false;
  #adopted = false;

  constructor(private readonly o: TapPoolOptions) {}

  /** Names of the taps ready to claim. */
  get ready(): string[] {
    return [...this.#ready.keys()].sort();
  }

  /**
   * Renames a warm tap on `bridge` to `name` and brings it up. Returns
   * false when none is ready (the caller then creates one).
   */
  async claim(name: string, bridge: string): Promise<boolean> {
    await this.#adopt(bridge);
    const warm = [...this.#ready].find(([, b]) => b === bridge)?.[0];
    if (warm === undefined) return false;
    // Taken synchronously, so two claims never get the same tap.
    this.#ready.delete(warm);
    try {
      // A link can only be renamed while down; the pool keeps them down.
      await run("ip", ["link", "set", "dev", warm, "name", name, "up"]);
      return true;
    } catch (error) {
      this.o.log.warn("warm tap unusable, creating one", {
        tap: warm,
        error: String(error),
      });
      await deleteTap(warm).catch(() => {});
      return false;
    }
  }

  /**
   * Tops the pool up to its size on `bridge`, at most `parallelism` taps at
   * a time. Concurrent calls share one refill (plus one more pass, so a
   * claim during a refill is still replaced).
   */
  refill(bridge: string): Promise<void> {
    if (this.#refilling) {
      this.#again = true;
      return this.#refilling;
    }
    this.#refilling = (async () => {
      try {
        do {
          this.#again = false;
          await this.#adopt(bridge);
          await this.#fill(bridge);
        } while (this.#again);
      } finally {
        this.#refilling = undefined;
      }
    })();
    return this.#refilling;
  }

  /** Deletes every warm tap (on shutdown). */
  async drain(): Promise<void> {
    await this.#refilling?.catch(() => {});
    const names = [...this.#ready.keys()];
    this.#ready.clear();
    for (const name of names) await deleteTap(name).catch(() => {});
  }

  async #fill(bridge: string): Promise<void> {
    const missing: string[] = [];
    for (let i = 0; missing.length + this.#ready.size < this.o.size; i++) {
      const name = `bgpool${i}`;
      if (!this.#ready.has(name)) missing.push(name);
    }
    const parallelism = this.o.parallelism ?? REFILL_PARALLELISM;
    const failures: string[] = [];
    const worker = async () => {
      for (let name = missing.shift(); name; name = missing.shift()) {
        try {
          await createWarmTap(name, bridge, this.o.owner);
          this.#ready.set(name, bridge);
        } catch (error) {
          failures.push(String(error));
        }
      }
    };
    await Promise.all(Array.from({ length: parallelism }, worker));
    if (failures.length) {
      this.o.log.warn("tap pool refill incomplete", { failures });
    }
  }

  /** Takes over warm taps a previous helper left (once). */
  async #adopt(bridge: string): Promise<void> {
    if (this.#adopted) return;
    this.#adopted = true;
    const result = await run("ip", ["-j", "-d", "link", "show"]);
    const links = JSON.parse(result.stdout) as {
      ifname: string;
      master?: string;
      flags?: string[];
    }[];
    for (const link of links) {
      if (!POOL_TAP_NAME.test(link.ifname)) continue;
      if (link.master === bridge && !link.flags?.includes("UP")) {
        this.#ready.set(link.ifname, bridge);
      } else {
        // Not in the state the pool promises: start it over.
        await deleteTap(link.ifname).catch(() => {});
      }
    }
  }
}

/** Creates one idle tap: owned by `owner`, attached to `bridge`, down. */
async function createWarmTap(
  name: string,
  bridge: string,
  owner: number,
): Promise<void> {
  if (await linkExists(name)) await deleteTap(name);

  try {
    await run("ip", [
      "tuntap",
      "add",
      "dev",
      name,
      "mode",
      "tap",
      "user",
      String(owner),
    ]);
  } catch (error) {
    throw new NetworkStepError(`Cannot create warm tap "${name}"`, error);
  }

  try {
    // Attached now so that a claim is one rename away from use.
    await run("ip", ["link", "set", "dev", name, "master", bridge]);
  } catch (error) {
    await deleteTap(name).catch(() => {});
    throw new NetworkStepError(
      `Cannot attach warm tap "${name}" to "${bridge}"`,
      error,
    );
  }
}
