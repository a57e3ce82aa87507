/**
 * Sizes as users write them: `512M`, `4G`, `4GiB`, `512MiB`; a bare number
 * is MiB. Binary units throughout (1G = 1024 MiB).
 *
 * @module
 */

const UNITS: Record<string, number> = {
  "": 1,
  m: 1,
  mb: 1,
  mib: 1,
  g: 1024,
  gb: 1024,
  gib: 1024,
  t: 1024 * 1024,
  tb: 1024 * 1024,
  tib: 1024 * 1024,
};

/**
 * Parses a size into MiB.
 *
 * Throws an error naming `what` when the text is not a positive whole number
 * of MiB.
 *
 * @example
 * ```ts
 * parseSizeMiB("4G", "--disk-size"); // 4096
 * ```
 */
export function parseSizeMiB(
  text: string,
  what: string,
  max?: { mib: number; why: string },
  min?: { mib: number; why: string },
): number {
  const match = text.trim().match(/^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/);
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) {
    throw new RangeError(
      `Invalid ${what} "${text}": expected a size such as 512M, 4G or 4GiB`,
    );
  }
  const mib = Number(match[1]) * unit;
  if (!Number.isInteger(mib)) {
    throw new RangeError(
      `Invalid ${what} "${text}": must be a whole number of MiB`,
    );
  }
  if (mib <= 0) {
    throw new RangeError(`Invalid ${what} "${text}": must be positive`);
  }
  if (min && mib < min.mib) {
    throw new RangeError(
      `Invalid ${what} "${text}": at least ${formatMiB(min.mib)} (${min.why})`,
    );
  }
  if (max && mib > max.mib) {
    throw new RangeError(
      `Invalid ${what} "${text}": at most ${formatMiB(max.mib)} (${max.why})`,
    );
  }
  return mib;
}

/**
 * The least guest memory: the kernel must hold its initrd (about 6 MiB)
 * and systemd and sshd must start.
 */
export const MIN_MEMORY_MIB = 256;

/** The largest work disk: ext4's limit with 4 KiB blocks, 16 TiB. */
export const MAX_DISK_MIB = 16 * 1024 * 1024;

/**
 * Parses a guest memory size, at most the host's memory. Requires
 * `--allow-sys` (systemMemoryInfo).
 */
export function parseMemoryMiB(text: string, what = "--memory"): number {
  const hostMib = Math.floor(Deno.systemMemoryInfo().total / (1024 * 1024));
  return parseSizeMiB(
    text,
    what,
    { mib: hostMib, why: "this host's memory" },
    { mib: MIN_MEMORY_MIB, why: "what a Debian guest needs to boot" },
  );
}

/** Parses a work disk size, at most {@linkcode MAX_DISK_MIB}. */
export function parseDiskMiB(text: string, what = "--disk-size"): number {
  return parseSizeMiB(text, what, {
    mib: MAX_DISK_MIB,
    why: "the largest ext4 disk",
  });
}

/** Formats MiB for people: `2048 MiB` stays MiB, `8192` becomes `8G`. */
export function formatMiB(mib: number): string {
  if (mib >= 1024 && mib % 1024 === 0) return `${mib / 1024}G`;
  return `${mib}M`;
}
