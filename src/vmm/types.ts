/**
 * The VMM-neutral description of a VM to boot, and the interface every VMM
 * driver (QEMU here; Firecracker behind the same seam) implements.
 *
 * @module
 */

/** A block device handed to the guest. */
export interface DriveSpec {
  id: string;
  path: string;
  format: "raw" | "qcow2";
  readOnly: boolean;
}

/** Everything a driver needs to boot one VM. */
export interface LaunchSpec {
  id: string;
  name: string;
  vcpu: number;
  memoryMib: number;
  kernel: string;
  initrd: string | undefined;
  /** Kernel command line without driver-specific additions. */
  cmdline: string[];
  /** Drives in the order the guest should see them (root first). */
  drives: DriveSpec[];
  net: { tap: string; mac: string };
  /** The VM's directory: pid file and console log go here. */
  dir: string;
  /** Where the VMM's control socket (QMP, Firecracker API) listens. */
  controlSocket: string;
  consoleLog: string;
}

/** What a driver leaves behind to find and control a running VMM. */
export interface VmmHandles {
  vmm: string;
  pid: number;
  /** Control socket (QMP for QEMU, the API socket for Firecracker). */
  controlSocket: string;
}

/** A VMM driver. */
export interface VmmDriver {
  readonly name: string;
  /**
   * The root disk format the VMM takes: QEMU boots a qcow2 overlay,
   * Firecracker only raw files. Absent means qcow2.
   */
  readonly rootFormat?: "raw" | "qcow2";
  /**
   * What the guest is asked to do on a clean stop so that the VMM exits
   * by itself: QEMU exits on a power-off; x86 Firecracker only on a reboot
   * (it has no power-off device). Absent means "poweroff".
   */
  readonly guestStop?: "poweroff" | "reboot";
  /** Starts the VMM; resolves once it runs in the background. */
  launch(spec: LaunchSpec): Promise<VmmHandles>;
  /** True when the process in `handles` is alive and is this VM's VMM. */
  isAlive(handles: VmmHandles, dir: string): Promise<boolean>;
  /**
   * Ends the VMM: asks it to quit, then signals it, and waits until it is
   * gone (at most `timeoutMs`).
   */
  terminate(
    handles: VmmHandles,
    dir: string,
    timeoutMs?: number,
  ): Promise<void>;
  /**
   * Removes what the driver made outside the VM's directory for VM `id`
   * (sockets, a jail); runs after `terminate` and on a failed create, also
   * when no VMM was ever recorded.
   */
  release?(id: string, dir: string, controlSocket: string): Promise<void>;
}
