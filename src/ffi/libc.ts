/**
 * The few libc calls Deno does not expose: a unix socket server whose
 * accepted descriptors can be asked for their peer's credentials
 * (SO_PEERCRED), and the calls the helper needs to stage jailer chroots:
 * mknod, mount, umount2, and descriptor-based open, statx, readlink and
 * linkat, so that a file is checked and linked as the same inode.
 *
 * Only the helper role loads this module; it needs `--allow-ffi`.
 *
 * @module
 */

/** Linux constants used below (x86_64 and aarch64 agree on these). */
export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_PEERCRED = 17;
export const SO_RCVTIMEO = 20;
export const SO_SNDTIMEO = 21;
/** mount(2) flags (include/uapi/linux/mount.h). */
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;
/** umount2(2): detach now, finish when no longer busy, with submounts. */
export const MNT_DETACH = 0x2;
/** umount2(2): refuse to follow a symlink at the target. */
export const UMOUNT_NOFOLLOW = 0x8;
/** File type bits in `st_mode`. */
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFBLK = 0o060000;
/** open(2) flags (x86_64 and aarch64 values). */
export const O_PATH = 0o10000000;
export const O_NOFOLLOW = 0o400000;
export const O_DIRECTORY = 0o200000;
export const O_CLOEXEC = 0o2000000;
/** `*at()` calls: the directory is the current one. */
export const AT_FDCWD = -100;
/** `*at()` calls: operate on the descriptor itself (empty path). */
export const AT_EMPTY_PATH = 0x1000;
/** statx(2): the fields of a classic stat. */
export const STATX_BASIC_STATS = 0x7ff;
/** `sizeof(struct statx)`. */
const STATX_SIZE = 256;
/** The longest path readlink is asked for (PATH_MAX). */
const PATH_MAX = 4096;
/** `sizeof(struct sockaddr_un)`: 2 bytes of family, 108 of path. */
export const SOCKADDR_UN_SIZE = 110;
/** The longest socket path the kernel accepts, NUL included. */
export const UNIX_PATH_MAX = 108;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  // Blocking calls run on Deno's blocking thread pool.
  accept4: {
    parameters: ["i32", "pointer", "pointer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  read: {
    parameters: ["i32", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
  write: {
    parameters: ["i32", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
  close: { parameters: ["i32"], result: "i32" },
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
  setsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "u32"],
    result: "i32",
  },
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32" },
  mount: {
    parameters: ["buffer", "buffer", "buffer", "u64", "pointer"],
    result: "i32",
  },
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  statx: {
    parameters: ["i32", "buffer", "i32", "u32", "buffer"],
    result: "i32",
  },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  linkat: {
    parameters: ["i32", "buffer", "i32", "buffer", "i32"],
    result: "i32",
  },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let libc: Libc | undefined;

/** Opens libc once. Requires `--allow-ffi`. */
export function openLibc(): Libc {
  libc ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return libc;
}

/** The calling thread's errno (valid only after a synchronous call). */
export function errno(): number {
  const pointer = openLibc().__errno_location();
  return pointer ? new Deno.UnsafePointerView(pointer).getInt32() : 0;
}

/** The text of `code`, e.g. "Operation not permitted". */
export function strerror(code: number): string {
  const pointer = openLibc().strerror(code);
  return pointer ? new Deno.UnsafePointerView(pointer).getCString() : "";
}

/** A NUL-terminated copy of `text` for a `const char *` parameter. */
export function cString(text: string): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  if (bytes.includes(0)) {
    throw new RangeError(`Refusing path "${text}": it contains a NUL byte`);
  }
  const out = new Uint8Array(bytes.byteLength + 1);
  out.set(bytes);
  return out;
}

/**
 * Linux's `makedev`: the 64-bit device number of `major:minor` as glibc
 * encodes it.
 */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return (mi & 0xffn) | ((ma & 0xfffn) << 8n) | ((mi & ~0xffn) << 12n) |
    ((ma & ~0xfffn) << 32n);
}

/** Splits a device number (`st_rdev`) into major and minor. */
export function splitDev(dev: number | bigint): [number, number] {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return [Number(major), Number(minor)];
}

/**
 * mknod(2): creates a device node. Throws {@linkcode LibcError}. Requires
 * `--allow-ffi` and CAP_MKNOD.
 */
export function mknod(path: string, mode: number, dev: bigint): void {
  if (openLibc().mknod(cString(path), mode, dev) !== 0) {
    const code = errno();
    throw new LibcError("mknod", code, `${path}: ${strerror(code)}`);
  }
}

/**
 * mount(2) without a filesystem type or data: bind mounts, remounts and
 * propagation changes. `source` may be undefined (remount, propagation).
 * Throws {@linkcode LibcError}. Requires `--allow-ffi` and CAP_SYS_ADMIN.
 */
export function mount(
  source: string | undefined,
  target: string,
  flags: number,
): void {
  const rc = openLibc().mount(
    source === undefined ? null : cString(source),
    cString(target),
    null,
    BigInt(flags),
    null,
  );
  if (rc !== 0) {
    const code = errno();
    throw new LibcError("mount", code, `${target}: ${strerror(code)}`);
  }
}

/**
 * umount2(2). Throws {@linkcode LibcError}. Requires `--allow-ffi` and
 * CAP_SYS_ADMIN.
 */
export function umount2(target: string, flags: number): void {
  if (openLibc().umount2(cString(target), flags) !== 0) {
    const code = errno();
    throw new LibcError("umount2", code, `${target}: ${strerror(code)}`);
  }
}

/**
 * open(2) of `path` as an `O_PATH` descriptor that does not follow a
 * symlink in the last component (a symlink there is opened itself, and
 * {@linkcode fdStat} says so): a handle on exactly one inode, to check with
 * {@linkcode fdStat} and {@linkcode fdPath} and then use with
 * {@linkcode linkFd}. Close it with {@linkcode closeFd}. Throws
 * {@linkcode LibcError}. Requires `--allow-ffi`.
 */
export function openPath(path: string): number {
  const fd = openLibc().open(cString(path), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) {
    const code = errno();
    throw new LibcError("open", code, `${path}: ${strerror(code)}`);
  }
  return fd;
}

/** close(2). */
export function closeFd(fd: number): void {
  openLibc().close(fd);
}

/** What {@linkcode fdStat} reports of an inode. */
export interface FdStat {
  /** File type and permission bits (`st_mode`). */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /** Device numbers, for block and character devices. */
  rdevMajor: number;
  rdevMinor: number;
}

/**
 * statx(2) of the inode behind `fd` (`AT_EMPTY_PATH`). struct statx has
 * the same layout on every architecture, unlike struct stat. Throws
 * {@linkcode LibcError}.
 */
export function fdStat(fd: number): FdStat {
  const buffer = new Uint8Array(STATX_SIZE);
  const rc = openLibc().statx(
    fd,
    cString(""),
    AT_EMPTY_PATH,
    STATX_BASIC_STATS,
    buffer,
  );
  if (rc !== 0) {
    const code = errno();
    throw new LibcError("statx", code, strerror(code));
  }
  const view = new DataView(buffer.buffer);
  return {
    nlink: view.getUint32(16, true),
    uid: view.getUint32(20, true),
    gid: view.getUint32(24, true),
    mode: view.getUint16(28, true),
    rdevMajor: view.getUint32(128, true),
    rdevMinor: view.getUint32(132, true),
  };
}

/**
 * Where the inode behind `fd` is, as the kernel resolved it when it was
 * opened (readlink of `/proc/self/fd/<fd>`): every symlink and `..` on the
 * way already followed. Throws {@linkcode LibcError}.
 */
export function fdPath(fd: number): string {
  const buffer = new Uint8Array(PATH_MAX);
  const n = Number(
    openLibc().readlink(
      cString(`/proc/self/fd/${fd}`),
      buffer,
      BigInt(PATH_MAX),
    ),
  );
  if (n < 0) {
    const code = errno();
    throw new LibcError("readlink", code, strerror(code));
  }
  return new TextDecoder().decode(buffer.subarray(0, n));
}

/**
 * linkat(2) of the inode behind `fd` to the new name `target`
 * (`AT_EMPTY_PATH`): the link is made to the inode that was checked, even
 * if its old name has been replaced since. Throws {@linkcode LibcError}.
 * Requires CAP_DAC_READ_SEARCH (root).
 */
export function linkFd(fd: number, target: string): void {
  const c = openLibc();
  if (
    c.linkat(fd, cString(""), AT_FDCWD, cString(target), AT_EMPTY_PATH) !== 0
  ) {
    const code = errno();
    throw new LibcError("linkat", code, `${target}: ${strerror(code)}`);
  }
}

/** A libc call failed; carries the call's name and errno. */
export class LibcError extends Error {
  constructor(readonly call: string, readonly errno: number, detail = "") {
    super(`${call}() failed with errno ${errno}${detail ? `: ${detail}` : ""}`);
    this.name = "LibcError";
  }
}

/** Credentials of the process at the other end of a unix socket. */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** Reads SO_PEERCRED of a connected unix socket descriptor. */
export function peerCredentials(fd: number): PeerCredentials {
  const ucred = new Uint8Array(12);
  const length = new Uint32Array([12]);
  const rc = openLibc().getsockopt(
    fd,
    SOL_SOCKET,
    SO_PEERCRED,
    ucred,
    new Uint8Array(length.buffer),
  );
  if (rc !== 0) throw new LibcError("getsockopt(SO_PEERCRED)", errno());
  const view = new DataView(ucred.buffer);
  return {
    pid: view.getInt32(0, true),
    uid: view.getUint32(4, true),
    gid: view.getUint32(8, true),
  };
}

/** Encodes a `struct sockaddr_un` for `path`; throws when it does not fit. */
export function sockaddrUn(path: string): Uint8Array {
  const encoded = new TextEncoder().encode(path);
  if (encoded.byteLength >= UNIX_PATH_MAX) {
    throw new RangeError(
      `Cannot bind socket "${path}": path is ${encoded.byteLength} bytes, at most ${
        UNIX_PATH_MAX - 1
      }`,
    );
  }
  const address = new Uint8Array(SOCKADDR_UN_SIZE);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(encoded, 2);
  return address;
}

/** An accepted connection on a raw descriptor. */
export class FdConnection {
  #closed = false;
  constructor(readonly fd: number) {}

  /** Reads into `buffer`; null at end of stream or on a timeout. */
  async read(buffer: Uint8Array): Promise<number | null> {
    if (this.#closed) return null;
    const n = Number(
      await openLibc().read(this.fd, buffer, BigInt(buffer.byteLength)),
    );
    return n > 0 ? n : null;
  }

  async write(data: Uint8Array): Promise<number> {
    const n = Number(
      await openLibc().write(this.fd, data, BigInt(data.byteLength)),
    );
    if (n < 0) throw new LibcError("write", 0, "peer went away");
    return n;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    openLibc().close(this.fd);
  }
}

/** A listening unix stream socket whose connections expose their fd. */
export class UnixListener {
  private constructor(readonly fd: number, readonly path: string) {}

  /**
   * Creates, binds and listens on `path` (an existing socket file there is
   * replaced). Throws {@linkcode LibcError} naming the failing step.
   */
  static async listen(path: string, backlog = 64): Promise<UnixListener> {
    const c = openLibc();
    const address = sockaddrUn(path);
    await Deno.remove(path).catch(() => {});

    const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new LibcError("socket", errno());

    if (c.bind(fd, address, SOCKADDR_UN_SIZE) !== 0) {
      const e = errno();
      c.close(fd);
      throw new LibcError("bind", e, path);
    }

    if (c.listen(fd, backlog) !== 0) {
      const e = errno();
      c.close(fd);
      throw new LibcError("listen", e, path);
    }
    return new UnixListener(fd, path);
  }

  /**
   * Waits for the next connection. A connection gets receive and send
   * timeouts of `timeoutSeconds`, so a peer that stalls cannot pin a thread.
   */
  async accept(timeoutSeconds = 30): Promise<FdConnection> {
    const c = openLibc();
    const fd = await c.accept4(this.fd, null, null, SOCK_CLOEXEC);
    if (fd < 0) throw new LibcError("accept4", 0);
    const timeval = new BigInt64Array([BigInt(timeoutSeconds), 0n]);
    const bytes = new Uint8Array(timeval.buffer);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, bytes, 16);
    c.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, bytes, 16);
    return new FdConnection(fd);
  }

  close(): void {
    openLibc().close(this.fd);
  }
}
