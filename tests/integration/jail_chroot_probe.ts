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
import {
  closeJailSources,
  openJailSource,
  removeJail,
  stageJail,
} from "../../src/jailer/chroot.ts";
import {
  CHROOT_INITRD,
  CHROOT_KERNEL,
  chrootDrive,
  jailPaths,
} from "../../src/jailer/layout.ts";
import { mountsUnder, readMounts } from "../../src/util/mountinfo.ts";
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
  const sources = {
    kernel: openJailSource(join(imageDir, "vmlinux")),
    initrd: openJailSource(join(imageDir, "initrd.img")),
    root: openJailSource(join(vmDir, "root.img")),
    scratch: openJailSource(device),
    log: openJailSource(join(vmDir, "firecracker.log")),
    metrics: openJailSource(join(vmDir, "metrics.json")),
    console: openJailSource(join(vmDir, "console.log")),
  };
  try {
    return await stageJail(base, {
      id: ID,
      uid: OWNER,
      gid: OWNER,
      // Any dynamically linked executable: the copy and the library binds
      // are what is checked, not that it is Firecracker.
      firecrackerBin: "/usr/bin/true",
      kernel: sources.kernel,
      initrd: sources.initrd,
      drives: [
        { id: "root", source: sources.root },
        { id: "scratch", source: sources.scratch },
      ],
      log: sources.log,
      metrics: sources.metrics,
      console: sources.console,
      libraryDirs: JAIL_LIBRARY_DIRS,
    });
  } finally {
    closeJailSources(Object.values(sources));
  }
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
    mountTableUnchanged:
      JSON.stringify(await mountTable()) === JSON.stringify(tableBefore),
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

/** The whole mount table, as comparable lines. */
async function mountTable(): Promise<string[]> {
  return (await readMounts()).map((m) =>
    `${m.mountPoint} ${m.readOnly ? "ro" : "rw"}`
  ).sort();
}

const tableBefore = await mountTable();
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
  case "swap": {
    // The kernel's path is replaced by a symlink to another file after it
    // was opened and checked: the jail still gets the checked inode.
    const device = await setup();
    const kernelPath = join(imageDir, "vmlinux");
    const checked = openJailSource(kernelPath);
    const original = await Deno.stat(kernelPath);
    await Deno.rename(kernelPath, join(imageDir, "vmlinux.orig"));
    await Deno.symlink("/etc/hostname", kernelPath);
    try {
      const sources = {
        initrd: openJailSource(join(imageDir, "initrd.img")),
        root: openJailSource(join(vmDir, "root.img")),
        log: openJailSource(join(vmDir, "firecracker.log")),
        metrics: openJailSource(join(vmDir, "metrics.json")),
        console: openJailSource(join(vmDir, "console.log")),
      };
      await stageJail(base, {
        id: ID,
        uid: OWNER,
        gid: OWNER,
        firecrackerBin: "/usr/bin/true",
        kernel: checked,
        initrd: sources.initrd,
        drives: [{ id: "root", source: sources.root }],
        log: sources.log,
        metrics: sources.metrics,
        console: sources.console,
        libraryDirs: [],
      });
      closeJailSources(Object.values(sources));
    } finally {
      closeJailSources([checked]);
    }
    const linked = await Deno.lstat(
      join(jailPaths(base, ID).root, CHROOT_KERNEL),
    );
    result = {
      sameInode: linked.ino === original.ino,
      isFile: linked.isFile,
      hostnameInode: linked.ino === (await Deno.stat("/etc/hostname")).ino,
      device,
    };
    await removeJail(base, ID);
    break;
  }
  case "owner-writable-base": {
    // A jail base the owner could swap is refused before anything is made.
    await setup();
    await Deno.mkdir(base, { mode: 0o777 });
    await Deno.chmod(base, 0o777);
    let error = "";
    try {
      await stage(await someBlockDevice());
    } catch (e) {
      error = (e as Error).message;
    }
    result = {
      error,
      jailMade: await Deno.lstat(join(base, "firecracker")).then(
        () => true,
        () => false,
      ),
    };
    break;
  }
  case "remove-only":
    result = { removed: await removeJail(base, ID) };
    break;
  default:
    throw new Error(`unknown scenario "${scenario}"`);
}
console.log(JSON.stringify(result));
