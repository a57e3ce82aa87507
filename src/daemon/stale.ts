/**
 * `auto_stop_stale_after`: stops VMs nobody has used for a while.
 *
 * "Used" means banger activity on the VM: it was started, or a banger
 * command had an ssh session or command open in it (`vm ssh`, `vm run`,
 * `vm exec` report activity when they begin, every
 * {@linkcode ACTIVITY_HEARTBEAT_MS} while they last, and when they end).
 * Limits below {@linkcode MIN_STALE_SECONDS} act as that minimum.
 * A plain `ssh name.vm` outside banger is invisible to the daemon and does
 * not count.
 *
 * @module
 */

/** How often a long banger session tells the daemon the VM is in use. */
export const ACTIVITY_HEARTBEAT_MS = 5_000;

/**
 * The shortest idle limit honoured: three heartbeats, so that a late
 * heartbeat of an open session never makes its VM look idle.
 */
export const MIN_STALE_SECONDS = (3 * ACTIVITY_HEARTBEAT_MS) / 1000;

/** A running VM as the stale check sees it. */
export interface StaleCandidate {
  id: string;
  name: string;
  /** Milliseconds since the epoch of the last activity. */
  lastActiveMs: number;
}

/** What {@linkcode StaleStopper} needs. */
export interface StaleStopperOptions {
  /** Idle seconds after which a VM is stopped; 0 turns the check off. */
  afterSeconds: number;
  /** The running VMs. */
  running(): StaleCandidate[];
  /**
   * Stops one VM unless it was used within `limitMs` by the time its lock
   * is free (a create or session may hold it and report activity before
   * letting go). Errors are reported through `onError`.
   */
  stop(id: string, limitMs: number): Promise<unknown>;
  now?: () => number;
  onStop?: (vm: StaleCandidate, idleMs: number) => void;
  onError?: (vm: StaleCandidate, error: unknown) => void;
}

/** Finds idle running VMs and stops them. */
export class StaleStopper {
  readonly #o: StaleStopperOptions;
  readonly #now: () => number;
  /** VMs whose stop is under way, so a slow stop is not started twice. */
  readonly #stopping = new Set<string>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(options: StaleStopperOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** How often {@linkcode start} checks: a quarter of the limit, 1-30 s. */
  get intervalMs(): number {
    const seconds = Math.max(this.#o.afterSeconds, MIN_STALE_SECONDS);
    return Math.min(30_000, Math.max(1000, seconds * 250));
  }

  /**
   * Checks once: starts a stop for every running VM idle for longer than
   * the limit and returns their ids. The stops finish in the background.
   */
  tick(): string[] {
    if (this.#o.afterSeconds <= 0) return [];
    const limit = Math.max(this.#o.afterSeconds, MIN_STALE_SECONDS) * 1000;
    const now = this.#now();
    const started: string[] = [];
    for (const vm of this.#o.running()) {
      const idle = now - vm.lastActiveMs;
      if (idle < limit || this.#stopping.has(vm.id)) continue;
      this.#stopping.add(vm.id);
      started.push(vm.id);
      this.#o.onStop?.(vm, idle);
      this.#o.stop(vm.id, limit)
        .catch((error) => this.#o.onError?.(vm, error))
        .finally(() => this.#stopping.delete(vm.id));
    }
    return started;
  }

  /** Checks periodically until {@linkcode close}; nothing when off. */
  start(): void {
    if (this.#o.afterSeconds <= 0 || this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.tick(), this.intervalMs);
  }

  /** Stops checking. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
