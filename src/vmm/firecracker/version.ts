/**
 * Reading `firecracker --version` (and `jailer --version`) and placing the
 * result against the range banger supports.
 *
 * @module
 */
import { run } from "../../util/exec.ts";

/** A semantic version as three numbers. */
export type Version = readonly [number, number, number];

/** The oldest Firecracker banger drives. */
export const MIN_VERSION: Version = [1, 5, 0];
/** The newest Firecracker banger was tested with (its API schema ships). */
export const TESTED_VERSION: Version = [1, 14, 1];
/** Firecracker describes virtio-mmio devices through ACPI from here on. */
export const ACPI_SINCE: Version = [1, 8, 0];
/** `--enable-pci` exists from here on. */
export const PCI_SINCE: Version = [1, 13, 0];
/**
 * `PUT /serial` (serial output to a file) is part of the 1.14 API schema;
 * older versions write the guest console to their stdout only.
 */
export const SERIAL_API_SINCE: Version = [1, 14, 0];

/**
 * Parses the version line of `firecracker --version` or `jailer --version`.
 *
 * Only the first non-empty line counts: the rest of Firecracker's output
 * lists snapshot format versions (`v1.0.0`, …) that a looser parser would
 * mistake for the program's version. Throws naming the program when the
 * line is not `<Program> vX.Y.Z[-suffix]`.
 */
export function parseVersionOutput(output: string, program: string): Version {
  const line = output.split("\n").map((l) => l.trim()).find((l) => l !== "");
  const match = line?.match(
    /^(?:firecracker|jailer)\s+v?(\d+)\.(\d+)\.(\d+)\b/i,
  );
  if (!match) {
    throw new Error(
      `Cannot read the version of "${program}": expected "Firecracker vX.Y.Z" on its first line, got "${
        (line ?? "").slice(0, 60)
      }"`,
    );
  }
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

/** Compares two versions: negative, zero or positive. */
export function compareVersions(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) {
    if (a[i]! !== b[i]!) return a[i]! - b[i]!;
  }
  return 0;
}

/** Formats a version as `1.14.1`. */
export function formatVersion(v: Version): string {
  return v.join(".");
}

/** Where a version sits against the supported range. */
export type VersionVerdict =
  | { status: "ok"; version: Version }
  | { status: "newer"; version: Version; warning: string }
  | { status: "too_old"; version: Version; error: string };

/**
 * Judges `version` of `program`: below {@linkcode MIN_VERSION} is refused,
 * above {@linkcode TESTED_VERSION} runs with a warning.
 */
export function judgeVersion(
  version: Version,
  program: string,
): VersionVerdict {
  const text = formatVersion(version);
  if (compareVersions(version, MIN_VERSION) < 0) {
    return {
      status: "too_old",
      version,
      error: `Cannot use "${program}" ${text}: banger needs Firecracker ${
        formatVersion(MIN_VERSION)
      } or newer (tested with ${formatVersion(TESTED_VERSION)})`,
    };
  }
  if (compareVersions(version, TESTED_VERSION) > 0) {
    return {
      status: "newer",
      version,
      warning: `"${program}" ${text} is newer than ${
        formatVersion(TESTED_VERSION)
      }, the newest version banger was tested with`,
    };
  }
  return { status: "ok", version };
}

/**
 * Runs `<bin> --version` and parses it. Requires `--allow-run` for `bin`.
 */
export async function probeVersion(bin: string): Promise<Version> {
  const result = await run(bin, ["--version"]);
  return parseVersionOutput(result.stdout, bin);
}
