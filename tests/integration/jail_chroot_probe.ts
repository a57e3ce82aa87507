/**
 * Runs jail staging and removal for jail_chroot_test.ts inside a private
 * mount namespace (the test starts this under `unshare --mount`), and
 * prints what it observed as one JSON object.
 *
 * Usage: jail_chroot_probe.ts <scenario> <work dir>
 *   scenario "stage-remove": stage, observe, remove in this process;
 *   scenario "crash": stage in one process, remove in another that knows
 *   nothing but the id, as after a daemon or helper restart.
 *
 * @module
 */
import { join } from "node:path";
import { removeJail, stageJail } from "../../src/jailer/chroot.ts";
import {
  CHROOT_INITRD,
  CHROOT_KERNEL,
  chrootDrive,
  jailPaths,
} from "../../src/jailer/layout.ts";
import { mountsUnder, readMounts } from "../../src/jailer/mountinfo.ts";
import { JAIL_LIBRARY_DIRS } from "../../src/roles.ts";

const [scenario, work] = Deno.args as [string, string];
const ID = "0123456789ab";
const OWNER = 4321;
const base = join(work, "jail");
const vmDir = join(work, "vms", ID);
const imageDir = join(work, "images", "debian");

/** The first block device on this host, for the device-node step. */
async function someBlockDevice(): Promise<string> {
  for (const name of ["loop0", "vda", "sda", "nvme0n1", "xvda"]) {
    const info = await Deno.stat(`/dev/${name}`).catch(() => undefined);
    if (info?.isBlockDevice) return `/dev/${name}`;
  }
  throw new Error("no block device found to mirror");
}

async function setup(): Promise<string> {
  await Deno.mkdir(vmDir, { recursive: true });
  await Deno.mkdir(imageDir, { recursive: true });
  for (
    const [dir, name] of [
      [imageDir, "vmlinux"],
      [imageDir, "initrd.img"],
      [vmDir, "root.img"],
      [vmDir, "firecracker.log"],
      [vmDir, "metrics.json"],
      [vmDir, "console.log"],
    ] as const
  ) {
    await Deno.writeTextFile(join(dir, name), `${name}\n`);
  }
  return await someBlockDevice();
}

async function stage(device: string) {
  return await stageJail(base, {
    id: ID,
    uid: OWNER,
    gid: OWNER,
    // Any dynamically linked executable: the copy and the library binds
    // are what is checked, not that it is Firecracker.
    firecrackerBin: "/usr/bin/true",
    kernel: join(imageDir, "vmlinux"),
    initrd: join(imageDir, "initrd.img"),
    drives: [
      { id: "root", path: join(vmDir, "root.img") },
      { id: "scratch", path: device },
    ],
    log: join(vmDir, "firecracker.log"),
    metrics: join(vmDir, "metrics.json"),
    console: join(vmDir, "console.log"),
    libraryDirs: JAIL_LIBRARY_DIRS,
  });
}

async function observe(device: string) {
  const paths = jailPaths(base, ID);
  const kernel = await Deno.stat(join(imageDir, "vmlinux"));
  const linked = await Deno.stat(join(paths.root, CHROOT_KERNEL));
  const node = await Deno.lstat(join(paths.root, chrootDrive("scratch")));
  const source = await Deno.stat(device);
  const binary = await Deno.stat(join(paths.root, "firecracker"));
  let libraryWrite = "allowed";
  try {
    await Deno.writeTextFile(join(paths.root, "usr/lib/banger-probe"), "x");
    await Deno.remove(join(paths.root, "usr/lib/banger-probe"));
  } catch (error) {
    libraryWrite = (error as Error).message;
  }
  return {
    mounts: mountsUnder(await readMounts(), paths.jailDir).map((m) => ({
      at: m.mountPoint.slice(paths.root.length) || "/",
      readOnly: m.readOnly,
    })),
    kernelLinks: kernel.nlink,
    sameInode: kernel.ino === linked.ino,
    initrdPresent: (await Deno.stat(join(paths.root, CHROOT_INITRD))).isFile,
    node: {
      isBlockDevice: node.isBlockDevice,
      rdev: node.rdev,
      sourceRdev: source.rdev,
      uid: node.uid,
      gid: node.gid,
    },
    binary: {
      size: binary.size,
      sourceSize: (await Deno.stat("/usr/bin/true")).size,
      mode: (binary.mode ?? 0) & 0o777,
    },
    libraryWrite,
    libEntry: (await Deno.lstat(join(paths.root, "lib"))).isSymlink
      ? "symlink"
      : "directory",
  };
}

async function afterRemove() {
  const paths = jailPaths(base, ID);
  return {
    mountsLeft: mountsUnder(await readMounts(), paths.jailDir).length,
    jailExists: await Deno.lstat(paths.jailDir).then(() => true, () => false),
    kernelLinks: (await Deno.stat(join(imageDir, "vmlinux"))).nlink,
    hostLibraryIntact: (await Deno.stat("/usr/bin/true")).isFile &&
      (await Deno.stat("/usr/lib/os-release").then(() => true, () => false)),
  };
}

async function child(phase: string): Promise<unknown> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, phase, work],
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`phase ${phase} failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

let result: unknown;
switch (scenario) {
  case "stage-remove": {
    const device = await setup();
    await stage(device);
    const staged = await observe(device);
    const removed = await removeJail(base, ID);
    result = { staged, removed, after: await afterRemove() };
    break;
  }
  case "crash": {
    // Stage in one process, then remove from another that starts cold.
    result = {
      staged: await child("stage-only"),
      removedByFresh: await child("remove-only"),
      after: await afterRemove(),
    };
    break;
  }
  case "stage-only": {
    const device = await setup();
    await stage(device);
    result = {
      mounts: mountsUnder(await readMounts(), jailPaths(base, ID).jailDir)
        .length,
    };
    break;
  }
  case "restage": {
    // Staging over a leftover jail replaces it instead of failing.
    const device = await setup();
    await stage(device);
    await stage(device);
    const staged = await observe(device);
    await removeJail(base, ID);
    result = { staged, after: await afterRemove() };
    break;
  }
  case "remove-only":
    result = { removed: await removeJail(base, ID) };
    break;
  default:
    throw new Error(`unknown scenario "${scenario}"`);
}
console.log(JSON.stringify(result));
