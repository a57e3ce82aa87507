/**
 * A VM's disks, all made without mounting anything:
 * - root: a qcow2 overlay over the image's read-only `rootfs.ext4`;
 * - work: an ext4 filesystem mounted at the guest's `/root`, seeded from the
 *   image's `/root` skeleton with `mkfs.ext4 -d`;
 * - seed: a small read-only ext4 filesystem with the guest's identity
 *   (hostname, address, ssh keys), rewritten before every start.
 *
 * @module
 */
import { join } from "node:path";
import { run } from "../util/exec.ts";
import { SEED_LABEL, WORK_LABEL } from "../image/guest_files.ts";

/** File names inside a VM's directory. */
export const VM_FILES = {
  root: "root.qcow2",
  /** The root disk of VMMs that take raw files only (Firecracker). */
  rootRaw: "root.img",
  work: "work.ext4",
  seed: "seed.ext4",
  console: "console.log",
  hostKey: "ssh_host_ed25519_key",
  handles: "handles.json",
} as const;

/** Size of the seed filesystem: a few small files. */
const SEED_SIZE = "4M";

/** Creates the copy-on-write root disk over `baseImage`. */
export async function createRootOverlay(
  baseImage: string,
  path: string,
): Promise<void> {
  await run("qemu-img", [
    "create",
    "-q",
    "-f",
    "qcow2",
    "-b",
    baseImage,
    "-F",
    "raw",
    path,
  ]);
}

/** The root disk's file name for a VMM's root format. */
export function rootFile(format: "raw" | "qcow2"): string {
  return format === "raw" ? VM_FILES.rootRaw : VM_FILES.root;
}

/**
 * Creates a raw copy-on-write-less root disk: a sparse copy of
 * `baseImage` (a reflink where the filesystem has them), for VMMs that
 * cannot read qcow2.
 */
export async function createRootCopy(
  baseImage: string,
  path: string,
): Promise<void> {
  // TODO: a device-mapper snapshot over a loop device would avoid copying
  // the image's data for every VM; that needs helper operations.
  await run("cp", ["--sparse=always", "--reflink=auto", baseImage, path]);
}

/**
 * Creates the work disk (sparse, `sizeMib` apparent) seeded with the image's
 * `/root` skeleton. `mkfs.ext4 -d` keeps the copier's ownership for files,
 * so the guest re-owns them at boot; the top directory is made root's here.
 */
export async function createWorkDisk(
  path: string,
  sizeMib: number,
  skeleton: string,
): Promise<void> {
  await run("mkfs.ext4", [
    "-q",
    "-F",
    "-L",
    WORK_LABEL,
    "-E",
    "root_owner=0:0",
    "-d",
    skeleton,
    path,
    `${sizeMib}M`,
  ]);
}

/** What the guest learns from its seed disk. */
export interface SeedValues {
  hostname: string;
  mac: string;
  address: string;
  prefix: number;
  gateway: string;
  dns: string;
  authorizedKey: string;
  hostKeyPath: string;
}

/** Renders the seed's environment file; every value is pre-validated. */
export function renderGuestEnv(seed: SeedValues): string {
  const line = (key: string, value: string | number) =>
    `${key}='${String(value).replaceAll("'", "")}'`;
  return [
    line("BANGER_HOSTNAME", seed.hostname),
    line("BANGER_MAC", seed.mac),
    line("BANGER_ADDRESS", seed.address),
    line("BANGER_PREFIX", seed.prefix),
    line("BANGER_GATEWAY", seed.gateway),
    line("BANGER_DNS", seed.dns),
    "",
  ].join("\n");
}

/** (Re)writes the seed disk at `path` from a staging directory. */
export async function writeSeedDisk(
  path: string,
  seed: SeedValues,
): Promise<void> {
  const staging = await Deno.makeTempDir({
    dir: join(path, ".."),
    prefix: ".seed-",
  });
  try {
    await Deno.writeTextFile(join(staging, "guest.env"), renderGuestEnv(seed));
    await Deno.writeTextFile(
      join(staging, "authorized_keys"),
      seed.authorizedKey.trim() + "\n",
    );
    await Deno.copyFile(seed.hostKeyPath, join(staging, VM_FILES.hostKey));
    await Deno.copyFile(
      `${seed.hostKeyPath}.pub`,
      join(staging, `${VM_FILES.hostKey}.pub`),
    );
    const temp = `${path}.tmp`;
    await run("mkfs.ext4", [
      "-q",
      "-F",
      "-L",
      SEED_LABEL,
      "-d",
      staging,
      temp,
      SEED_SIZE,
    ]);
    await Deno.rename(temp, path);
  } finally {
    await Deno.remove(staging, { recursive: true });
  }
}
