/**
 * Jail staging and removal against real directories, as root, each case
 * in a private mount namespace of its own (`unshare --mount`) so that no
 * bind mount can leak into the host's mount table even if a case fails.
 */
import assert from "node:assert/strict";

const PROBE = new URL("./jail_chroot_probe.ts", import.meta.url).pathname;
const isRoot = Deno.uid() === 0;

/** What jail_chroot_probe.ts reports after staging. */
interface Staged {
  mounts: { at: string; readOnly: boolean }[];
  kernelLinks: number;
  sameInode: boolean;
  initrdPresent: boolean;
  node: {
    isBlockDevice: boolean;
    rdev: number;
    sourceRdev: number;
    uid: number;
    gid: number;
  };
  binary: { size: number; sourceSize: number; mode: number };
  libraryWrite: string;
  libEntry: string;
}

/** What it reports after removal. */
interface After {
  mountsLeft: number;
  jailExists: boolean;
  kernelLinks: number;
  /** The whole mount table equals the one from before staging. */
  mountTableUnchanged: boolean;
  hostLibraryIntact: boolean;
}

async function probe<T>(scenario: string): Promise<T> {
  const work = await Deno.makeTempDir({ prefix: "banger-jail-" });
  try {
    const out = await new Deno.Command("unshare", {
      args: [
        "--mount",
        "--propagation",
        "private",
        "--",
        Deno.execPath(),
        "run",
        "-A",
        PROBE,
        scenario,
        work,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, `probe ${scenario} failed: ${stderr}`);
    return JSON.parse(new TextDecoder().decode(out.stdout));
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

Deno.test({
  name: "stageJail() links, mirrors devices, copies and binds read-only",
  ignore: !isRoot,
  async fn() {
    const { staged, removed, after } = await probe<
      { staged: Staged; removed: boolean; after: After }
    >("stage-remove");
    // The self bind is the first mount; library binds are read-only.
    assert.ok(
      staged.mounts.some((m: { at: string }) => m.at === "/"),
      `no self bind mount: ${JSON.stringify(staged.mounts)}`,
    );
    const libraries = staged.mounts.filter((m: { at: string }) => m.at !== "/");
    assert.ok(libraries.length > 0, "no library directory was bound");
    assert.ok(
      libraries.every((m: { readOnly: boolean }) => m.readOnly),
      `a library bind is writable: ${JSON.stringify(libraries)}`,
    );
    assert.match(staged.libraryWrite, /Read-only file system/);
    // Merged /usr: /lib is a symlink on the host and stays one inside.
    const hostLib = (await Deno.lstat("/lib")).isSymlink
      ? "symlink"
      : "directory";
    assert.equal(staged.libEntry, hostLib);
    assert.equal(staged.kernelLinks, 2, "the kernel was not hard-linked");
    assert.ok(staged.sameInode, "the jail's kernel is a copy, not a link");
    assert.ok(staged.initrdPresent);
    assert.ok(
      staged.node.isBlockDevice,
      "the drive node is not a block device",
    );
    assert.equal(
      staged.node.rdev,
      staged.node.sourceRdev,
      "device numbers differ",
    );
    assert.equal(staged.node.uid, 4321);
    assert.equal(staged.node.gid, 4321);
    assert.equal(staged.binary.size, staged.binary.sourceSize);
    assert.equal(staged.binary.mode, 0o755);

    assert.equal(removed, true);
    assert.equal(after.mountsLeft, 0, "mounts left after removal");
    assert.equal(after.jailExists, false, "the jail directory is left");
    assert.equal(after.kernelLinks, 1, "the kernel's extra link is left");
    assert.ok(after.mountTableUnchanged, "the mount table differs from before");
    assert.ok(after.hostLibraryIntact, "host libraries were touched");
  },
});

Deno.test({
  name: "removeJail() cleans up from a fresh process after a crash",
  ignore: !isRoot,
  async fn() {
    const { staged, removedByFresh, after } = await probe<{
      staged: { mounts: number };
      removedByFresh: { removed: boolean };
      after: After;
    }>("crash");
    assert.ok(staged.mounts >= 1, "staging made no mounts");
    assert.equal(removedByFresh.removed, true);
    assert.equal(after.mountsLeft, 0);
    assert.ok(after.mountTableUnchanged, "the mount table differs from before");
    assert.equal(after.jailExists, false);
    assert.ok(after.hostLibraryIntact);
  },
});

Deno.test({
  name: "stageJail() over a leftover jail replaces it",
  ignore: !isRoot,
  async fn() {
    const { staged, after } = await probe<{ staged: Staged; after: After }>(
      "restage",
    );
    // One self bind, not two stacked ones.
    assert.equal(
      staged.mounts.filter((m: { at: string }) => m.at === "/").length,
      1,
    );
    assert.equal(staged.kernelLinks, 2);
    assert.equal(after.mountsLeft, 0);
    assert.equal(after.jailExists, false);
  },
});

Deno.test({
  name:
    "stageJail() links the inode that was checked, not what the path became",
  ignore: !isRoot,
  async fn() {
    const r = await probe<
      { sameInode: boolean; isFile: boolean; hostnameInode: boolean }
    >("swap");
    assert.ok(r.isFile, "the jail's kernel is not a regular file");
    assert.ok(r.sameInode, "the jail's kernel is not the checked inode");
    assert.ok(!r.hostnameInode, "the swapped-in file reached the jail");
  },
});

Deno.test({
  name: "stageJail() refuses a jail base that others than root can write",
  ignore: !isRoot,
  async fn() {
    const r = await probe<{ error: string; jailMade: boolean }>(
      "owner-writable-base",
    );
    assert.match(
      r.error,
      /use jail base directory .*writable by group or others/,
    );
    assert.equal(r.jailMade, false);
  },
});
