/**
 * Staging and removing a jailer chroot, in the root helper.
 *
 * The jailer builds `<base>/firecracker/<id>/root`, pivots into it, drops
 * to the owner and execs Firecracker there. Everything Firecracker opens
 * must already be inside: the helper puts it there first. Each privileged
 * step is one call with its own named error, so a failure says which step
 * broke and on which path.
 *
 * Operator contract (see docs/firecracker.md): staging creates the jail
 * directory, a self bind mount on the chroot, hard links of the kernel,
 * initrd, log, metrics and console files, one device node per block device,
 * a copy of the firecracker binary and, when it is dynamically linked,
 * read-only bind mounts of the library directories. Removal detaches the
 * self bind mount (and with it every mount below), checks the mount table
 * shows nothing left inside, and only then deletes the directory.
 *
 * @module
 */
import { dirname, join } from "node:path";
import {
  closeFd,
  fdPath,
  type FdStat,
  fdStat,
  linkFd,
  makedev,
  mknod,
  MNT_DETACH,
  mount,
  MS_BIND,
  MS_NODEV,
  MS_NOSUID,
  MS_PRIVATE,
  MS_RDONLY,
  MS_REC,
  MS_REMOUNT,
  openPath,
  S_IFBLK,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  umount2,
  UMOUNT_NOFOLLOW,
} from "../ffi/libc.ts";
import {
  CHROOT_CONSOLE,
  CHROOT_INITRD,
  CHROOT_KERNEL,
  CHROOT_LOG,
  CHROOT_METRICS,
  chrootDrive,
  EXEC_FILE_NAME,
  JAIL_ID,
  type JailPaths,
  jailPaths,
} from "./layout.ts";
import { mountsUnder, readMounts } from "../util/mountinfo.ts";

/** A staging or cleanup step failed; `step` names it. */
export class JailStepError extends Error {
  constructor(
    readonly step: JailStep,
    readonly path: string,
    cause: unknown,
  ) {
    super(
      `Cannot ${STEP_TEXT[step]} "${path}": ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
    this.name = "JailStepError";
  }
}

/** The named steps, each one privileged call. */
export type JailStep =
  | "open_source"
  | "check_base_dir"
  | "create_dir"
  | "self_bind"
  | "make_private"
  | "link_file"
  | "make_device_node"
  | "chown_device_node"
  | "copy_binary"
  | "bind_libraries"
  | "remount_libraries_readonly"
  | "link_library_dir"
  | "detach_mounts"
  | "verify_unmounted"
  | "remove_dir";

const STEP_TEXT: Record<JailStep, string> = {
  open_source: "open the file to put into the jail",
  check_base_dir: "use jail base directory",
  create_dir: "create jail directory",
  self_bind: "bind-mount the chroot onto itself at",
  make_private: "make the chroot mount private at",
  link_file: "hard-link into the jail",
  make_device_node: "create device node",
  chown_device_node: "hand device node to the owner at",
  copy_binary: "copy the firecracker binary to",
  bind_libraries: "bind-mount a library directory at",
  remount_libraries_readonly: "make the library bind mount read-only at",
  link_library_dir: "recreate the library symlink",
  detach_mounts: "detach the jail's mounts at",
  verify_unmounted: "remove the jail: something is still mounted at",
  remove_dir: "remove jail directory",
};

function step<T>(name: JailStep, path: string, action: () => T): T {
  try {
    return action();
  } catch (error) {
    throw new JailStepError(name, path, error);
  }
}

async function stepAsync<T>(
  name: JailStep,
  path: string,
  action: () => Promise<T>,
): Promise<T> {
  try {
    return await action();
  } catch (error) {
    throw new JailStepError(name, path, error);
  }
}

/**
 * A file to put into a jail, opened once as an `O_PATH` descriptor that did
 * not follow a final symlink: it is checked and then linked (or mirrored as
 * a device node) as that same inode, so renaming or replacing its path in
 * between changes nothing.
 */
export interface JailSource {
  /** The path it was opened by (for messages). */
  path: string;
  fd: number;
  /** Where the inode really is, every symlink and `..` resolved. */
  realPath: string;
  stat: FdStat;
}

/** Opens `path` as a {@linkcode JailSource}; close it with closeJailSource. */
export function openJailSource(path: string): JailSource {
  const fd = step("open_source", path, () => openPath(path));
  try {
    return { path, fd, realPath: fdPath(fd), stat: fdStat(fd) };
  } catch (error) {
    closeFd(fd);
    throw new JailStepError("open_source", path, error);
  }
}

/** Closes the descriptors of `sources` (undefined entries are skipped). */
export function closeJailSources(
  sources: readonly (JailSource | undefined)[],
): void {
  for (const source of sources) {
    if (source) closeFd(source.fd);
  }
}

/** True for a regular file. */
export function isRegularFile(stat: FdStat): boolean {
  return (stat.mode & S_IFMT) === S_IFREG;
}

/** True for a symlink (opened itself, not followed). */
export function isSymlink(stat: FdStat): boolean {
  return (stat.mode & S_IFMT) === S_IFLNK;
}

/** True for a block device. */
export function isBlockDevice(stat: FdStat): boolean {
  return (stat.mode & S_IFMT) === S_IFBLK;
}

/** What goes into one VM's jail, every file already opened and checked. */
export interface JailContents {
  id: string;
  uid: number;
  gid: number;
  /** The firecracker binary to copy in (the helper's own configuration). */
  firecrackerBin: string;
  kernel: JailSource;
  initrd?: JailSource | undefined;
  /** Drives: regular files are hard-linked, block devices get a node. */
  drives: { id: string; source: JailSource }[];
  log: JailSource;
  metrics: JailSource;
  console: JailSource;
  /** Library directories to offer when the binary is dynamically linked. */
  libraryDirs: string[];
}

/** Permission bits that let others than root change a directory. */
const GROUP_OR_OTHER_WRITE = 0o022;

/**
 * Creates `dir` (mode 0711) when missing, and checks that it is a real
 * directory, owned by root and writable by nobody else: the jail base must
 * not be somewhere the owner can swap for a symlink, since staging creates,
 * links and mounts below it as root. Throws {@linkcode JailStepError}.
 */
export async function ensureRootOwnedDir(dir: string): Promise<void> {
  await stepAsync("create_dir", dir, async () => {
    await Deno.mkdir(dir, { recursive: true, mode: 0o711 });
  });
  const fd = step("check_base_dir", dir, () => openPath(dir));
  try {
    const stat = fdStat(fd);
    const problem = (stat.mode & S_IFMT) !== S_IFDIR
      ? "not a directory"
      : stat.uid !== 0
      ? `owned by uid ${stat.uid}, not root`
      : (stat.mode & GROUP_OR_OTHER_WRITE) !== 0
      ? `writable by group or others (mode ${(stat.mode & 0o777).toString(8)})`
      : fdPath(fd) !== dir
      ? `it resolves to "${fdPath(fd)}"`
      : undefined;
    if (problem) {
      throw new JailStepError("check_base_dir", dir, new Error(problem));
    }
  } finally {
    closeFd(fd);
  }
}

/**
 * Stages VM `contents.id`'s jail under `chrootBase`. On failure, whatever
 * was staged is removed again and the step's error is thrown.
 * Requires root, `--allow-ffi`, read of the inputs and write of the base.
 */
export async function stageJail(
  chrootBase: string,
  contents: JailContents,
): Promise<JailPaths> {
  if (!JAIL_ID.test(contents.id)) {
    throw new RangeError(`Refusing jail id "${contents.id}": not a banger id`);
  }
  const paths = jailPaths(chrootBase, contents.id);
  await ensureRootOwnedDir(chrootBase);
  await ensureRootOwnedDir(dirname(paths.jailDir));
  // A leftover jail (a crash between staging and cleanup) is removed
  // first, safely, rather than staged over.
  await removeJail(chrootBase, contents.id);
  try {
    await stageInto(paths, contents);
  } catch (error) {
    await removeJail(chrootBase, contents.id).catch(() => {});
    throw error;
  }
  return paths;
}

async function stageInto(paths: JailPaths, c: JailContents): Promise<void> {
  const root = paths.root;

  // The jail directories are root's; the jailer chowns the chroot itself.
  await stepAsync(
    "create_dir",
    root,
    () => Deno.mkdir(root, { recursive: true, mode: 0o755 }),
  );
  await stepAsync(
    "create_dir",
    join(root, "run"),
    () => Deno.mkdir(join(root, "run"), { mode: 0o755 }),
  );

  // Hard links, not copies: the kernel and disks are large, and the jail
  // sits on the same filesystem as banger's state. Each is linked from its
  // open descriptor, so it is the inode that was checked.
  const links: [JailSource, string][] = [
    [c.kernel, CHROOT_KERNEL],
    ...(c.initrd ? [[c.initrd, CHROOT_INITRD] as [JailSource, string]] : []),
    [c.log, CHROOT_LOG],
    [c.metrics, CHROOT_METRICS],
    [c.console, CHROOT_CONSOLE],
  ];
  for (const drive of c.drives) {
    const target = join(root, chrootDrive(drive.id));
    if (isBlockDevice(drive.source.stat)) {
      // A device node with the same numbers: the jailed process opens it
      // like the host device, without seeing the host's /dev.
      const { rdevMajor, rdevMinor } = drive.source.stat;
      step(
        "make_device_node",
        target,
        () => mknod(target, S_IFBLK | 0o600, makedev(rdevMajor, rdevMinor)),
      );
      await stepAsync(
        "chown_device_node",
        target,
        () => Deno.chown(target, c.uid, c.gid),
      );
    } else {
      links.push([drive.source, chrootDrive(drive.id)]);
    }
  }
  for (const [source, name] of links) {
    const target = join(root, name);
    step("link_file", target, () => linkFd(source.fd, target));
  }

  // A copy, not a bind mount: the jailer opens the exec file read-write
  // (to copy it in itself), which a read-only bind would refuse.
  const binary = join(root, EXEC_FILE_NAME);
  await stepAsync("copy_binary", binary, async () => {
    await Deno.copyFile(c.firecrackerBin, binary);
    await Deno.chmod(binary, 0o755);
  });

  // The chroot becomes its own mount point, so that every mount made
  // below it is one subtree that a single lazy unmount detaches, and so
  // that cleanup never has to walk into a library bind mount. It comes
  // after the hard links: link(2) refuses to cross mount points, even
  // between two of the same filesystem.
  step("self_bind", root, () => mount(root, root, MS_BIND));

  // Private: mounts inside the jail do not propagate to the host's peers.
  step("make_private", root, () => mount(undefined, root, MS_PRIVATE));

  if (await isDynamicallyLinked(c.firecrackerBin)) {
    for (const dir of c.libraryDirs) {
      await offerLibraryDir(root, dir);
    }
  }
}

/**
 * Makes host library directory `dir` visible at the same path inside the
 * chroot: a symlink stays a symlink (merged-/usr systems), a directory is
 * bind-mounted read-only.
 */
async function offerLibraryDir(root: string, dir: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(dir);
  } catch {
    return;
  }
  const target = join(root, dir);
  await stepAsync(
    "create_dir",
    dirname(target),
    () => Deno.mkdir(dirname(target), { recursive: true, mode: 0o755 }),
  );
  if (info.isSymlink) {
    const link = await Deno.readLink(dir);
    await stepAsync(
      "link_library_dir",
      target,
      () => Deno.symlink(link, target),
    );
    return;
  }
  if (!info.isDirectory) return;
  await stepAsync(
    "create_dir",
    target,
    () => Deno.mkdir(target, { mode: 0o755 }),
  );

  // Read-only takes a second call: the kernel ignores MS_RDONLY on the
  // initial bind and applies it only on a remount of that bind.
  step("bind_libraries", target, () => mount(dir, target, MS_BIND));
  step(
    "remount_libraries_readonly",
    target,
    () =>
      mount(
        undefined,
        target,
        MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
      ),
  );
}

/** The ELF program header type of the dynamic loader request. */
const PT_INTERP = 3;

/**
 * True when `path` is an ELF file with a PT_INTERP program header, i.e.
 * needs the dynamic loader and shared libraries.
 */
export async function isDynamicallyLinked(path: string): Promise<boolean> {
  const file = await Deno.open(path, { read: true });
  try {
    const header = new Uint8Array(64);
    if ((await file.read(header)) !== 64) return false;
    const elf = header[0] === 0x7f && header[1] === 0x45 &&
      header[2] === 0x4c && header[3] === 0x46;
    // Only 64-bit little-endian ELF (x86_64, aarch64) is expected here.
    if (!elf || header[4] !== 2 || header[5] !== 1) return false;
    const view = new DataView(header.buffer);
    const phoff = Number(view.getBigUint64(32, true));
    const phentsize = view.getUint16(54, true);
    const phnum = view.getUint16(56, true);
    const table = new Uint8Array(phentsize * phnum);
    await file.seek(phoff, Deno.SeekMode.Start);
    let read = 0;
    while (read < table.byteLength) {
      const n = await file.read(table.subarray(read));
      if (n === null) return false;
      read += n;
    }
    const tableView = new DataView(table.buffer);
    for (let i = 0; i < phnum; i++) {
      if (tableView.getUint32(i * phentsize, true) === PT_INTERP) return true;
    }
    return false;
  } finally {
    file.close();
  }
}

/**
 * Removes VM `id`'s jail under `chrootBase`: detaches every mount inside
 * it, checks the mount table, then deletes the directory. Returns false
 * when there was nothing to remove. Throws {@linkcode JailStepError} and
 * deletes nothing while anything is still mounted inside, so a library
 * bind mount can never be emptied through the jail.
 */
export async function removeJail(
  chrootBase: string,
  id: string,
): Promise<boolean> {
  if (!JAIL_ID.test(id)) {
    throw new RangeError(`Refusing jail id "${id}": not a banger id`);
  }
  const paths = jailPaths(chrootBase, id);
  try {
    await Deno.lstat(paths.jailDir);
  } catch {
    return false;
  }

  // Deepest first; the self bind goes last and takes anything missed, so
  // a failed detach is remembered rather than ending the loop: the mount
  // table check below is what decides.
  const failures: JailStepError[] = [];
  for (const entry of mountsUnder(await readMounts(), paths.jailDir)) {
    try {
      step(
        "detach_mounts",
        entry.mountPoint,
        () => umount2(entry.mountPoint, MNT_DETACH | UMOUNT_NOFOLLOW),
      );
    } catch (error) {
      failures.push(error as JailStepError);
    }
  }

  const left = mountsUnder(await readMounts(), paths.jailDir);
  if (left.length > 0) {
    throw new JailStepError(
      "verify_unmounted",
      left[0]!.mountPoint,
      new Error(
        `${left.length} mount(s) remain${
          failures.length
            ? ` (${failures.map((f) => f.message).join("; ")})`
            : ""
        }`,
      ),
    );
  }

  await stepAsync(
    "remove_dir",
    paths.jailDir,
    () => Deno.remove(paths.jailDir, { recursive: true }),
  );
  return true;
}

/** Re-exported for tests: a mount flag set on recursive binds. */
export const RECURSIVE_BIND = MS_BIND | MS_REC;
