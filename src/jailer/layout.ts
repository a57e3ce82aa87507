/**
 * Where things live in a jailed Firecracker's chroot. The jailer builds
 * `<chroot base>/<exec file name>/<id>/root`; banger's helper stages files
 * there and the daemon configures Firecracker with the names below, which
 * are what Firecracker sees after the jailer's pivot_root.
 *
 * @module
 */
import { basename, join } from "node:path";

/** The API socket inside the chroot: Firecracker's default path. */
export const CHROOT_API_SOCKET = "/run/firecracker.socket";
/** The kernel's name inside the chroot. */
export const CHROOT_KERNEL = "/vmlinux";
/** The initrd's name inside the chroot. */
export const CHROOT_INITRD = "/initrd.img";
/** Firecracker's log file inside the chroot (a hard link of the VM's). */
export const CHROOT_LOG = "/firecracker.log";
/** Firecracker's metrics file inside the chroot. */
export const CHROOT_METRICS = "/metrics.json";
/** The serial console file inside the chroot. */
export const CHROOT_CONSOLE = "/console.log";

/** The in-chroot path of drive `id`. */
export function chrootDrive(id: string): string {
  return `/drive-${id}`;
}

/** The exec file's name inside the jail: the jailer names dirs after it. */
export const EXEC_FILE_NAME = "firecracker";

/** Host paths of one VM's jail. */
export interface JailPaths {
  /** `<base>/firecracker/<id>`: what cleanup removes. */
  jailDir: string;
  /** `<jailDir>/root`: the chroot. */
  root: string;
  /** The API socket as the host sees it (often too long for sun_path). */
  apiSocket: string;
  /** The pid file the jailer writes (`<exec file name>.pid`). */
  pidFile: string;
}

/** The host paths of VM `id`'s jail under `chrootBase`. */
export function jailPaths(chrootBase: string, id: string): JailPaths {
  const jailDir = join(chrootBase, EXEC_FILE_NAME, id);
  const root = join(jailDir, "root");
  return {
    jailDir,
    root,
    apiSocket: join(root, CHROOT_API_SOCKET),
    pidFile: join(root, `${basename(EXEC_FILE_NAME)}.pid`),
  };
}

/** banger's VM ids, which are also jail ids: 12 lowercase hex digits. */
export const JAIL_ID = /^[0-9a-f]{12}$/;
