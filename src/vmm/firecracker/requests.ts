/**
 * The API requests that configure and boot one VM, built from the
 * VMM-neutral launch spec. Pure: the contract tests validate every body
 * against Firecracker's published schema.
 *
 * @module
 */
import { join } from "node:path";
import {
  CHROOT_CONSOLE,
  CHROOT_INITRD,
  CHROOT_KERNEL,
  CHROOT_LOG,
  CHROOT_METRICS,
  chrootDrive,
} from "../../jailer/layout.ts";
import type { ApiRequest } from "./api.ts";
import type { LaunchSpec } from "../types.ts";

/** Files the driver keeps in the VM's directory. */
export const FIRECRACKER_FILES = {
  pid: "vmm.pid",
  log: "firecracker.log",
  metrics: "metrics.json",
} as const;

/** Firecracker's limits on a machine. */
export const MAX_VCPUS = 32;
/** The interface id banger gives the guest's only network device. */
export const NET_IFACE_ID = "net0";

/** Paths as Firecracker sees them (inside its chroot when jailed). */
export interface FirecrackerPaths {
  kernel: string;
  initrd: string | undefined;
  /** Drive id → path. */
  drives: Record<string, string>;
  log: string;
  metrics: string;
  /** Where the serial console goes; undefined keeps Firecracker's stdout. */
  serial: string | undefined;
}

/**
 * The paths Firecracker is given for `spec`: inside the chroot when
 * jailed, the host's otherwise. `serialApi` says whether this Firecracker
 * has `PUT /serial`; without it the console stays on its stdout.
 */
export function firecrackerPaths(
  spec: LaunchSpec,
  mode: { jailed: boolean; serialApi: boolean },
): FirecrackerPaths {
  if (mode.jailed) {
    return {
      kernel: CHROOT_KERNEL,
      initrd: spec.initrd ? CHROOT_INITRD : undefined,
      drives: Object.fromEntries(
        spec.drives.map((d) => [d.id, chrootDrive(d.id)]),
      ),
      log: CHROOT_LOG,
      metrics: CHROOT_METRICS,
      serial: mode.serialApi ? CHROOT_CONSOLE : undefined,
    };
  }
  return {
    kernel: spec.kernel,
    initrd: spec.initrd,
    drives: Object.fromEntries(spec.drives.map((d) => [d.id, d.path])),
    log: join(spec.dir, FIRECRACKER_FILES.log),
    metrics: join(spec.dir, FIRECRACKER_FILES.metrics),
    serial: mode.serialApi ? spec.consoleLog : undefined,
  };
}

/**
 * The kernel command line for Firecracker: the spec's, without `root=`
 * (Firecracker adds `root=/dev/vda` for the drive marked as root device),
 * plus `reboot=k` so that a guest reboot ends the process, which is how
 * Firecracker reports it.
 */
export function firecrackerBootArgs(cmdline: readonly string[]): string {
  return [...cmdline.filter((arg) => !arg.startsWith("root=")), "reboot=k"]
    .join(" ");
}

/**
 * Checks that `spec` is something Firecracker can boot; throws naming the
 * VM and the problem (qcow2 disks, too many vCPUs).
 */
export function checkSpec(spec: LaunchSpec): void {
  if (!Number.isInteger(spec.vcpu) || spec.vcpu < 1 || spec.vcpu > MAX_VCPUS) {
    throw new Error(
      `Cannot start VM "${spec.name}" with Firecracker: ${spec.vcpu} vCPUs, it takes 1 to ${MAX_VCPUS}`,
    );
  }
  for (const drive of spec.drives) {
    if (drive.format !== "raw") {
      throw new Error(
        `Cannot start VM "${spec.name}" with Firecracker: drive "${drive.id}" is ${drive.format}, Firecracker takes raw disks only`,
      );
    }
    if (!/^[A-Za-z0-9_]{1,64}$/.test(drive.id)) {
      throw new Error(
        `Cannot start VM "${spec.name}" with Firecracker: drive id "${drive.id}" is not alphanumeric`,
      );
    }
  }
  if (spec.drives.length === 0) {
    throw new Error(
      `Cannot start VM "${spec.name}" with Firecracker: it has no root drive`,
    );
  }
}

/**
 * The requests, in order, that configure `spec` and start it. The first
 * drive is the root device. The logger and metrics come first so that
 * Firecracker's own account of a failed configuration is in its log.
 */
export function configureRequests(
  spec: LaunchSpec,
  paths: FirecrackerPaths,
): ApiRequest[] {
  checkSpec(spec);
  const requests: ApiRequest[] = [
    {
      method: "PUT",
      path: "/logger",
      body: {
        log_path: paths.log,
        level: "Info",
        show_level: true,
        show_log_origin: false,
      },
    },
    { method: "PUT", path: "/metrics", body: { metrics_path: paths.metrics } },
    {
      method: "PUT",
      path: "/machine-config",
      body: { vcpu_count: spec.vcpu, mem_size_mib: spec.memoryMib, smt: false },
    },
    {
      method: "PUT",
      path: "/boot-source",
      body: {
        kernel_image_path: paths.kernel,
        ...(paths.initrd ? { initrd_path: paths.initrd } : {}),
        boot_args: firecrackerBootArgs(spec.cmdline),
      },
    },
  ];
  spec.drives.forEach((drive, index) => {
    const path = paths.drives[drive.id];
    if (path === undefined) {
      throw new Error(`Cannot configure drive "${drive.id}": no path for it`);
    }
    requests.push({
      method: "PUT",
      path: `/drives/${drive.id}`,
      body: {
        drive_id: drive.id,
        path_on_host: path,
        is_root_device: index === 0,
        is_read_only: drive.readOnly,
        cache_type: "Writeback",
      },
    });
  });
  requests.push({
    method: "PUT",
    path: `/network-interfaces/${NET_IFACE_ID}`,
    body: {
      iface_id: NET_IFACE_ID,
      host_dev_name: spec.net.tap,
      guest_mac: spec.net.mac,
    },
  });
  if (paths.serial !== undefined) {
    requests.push({
      method: "PUT",
      path: "/serial",
      body: { serial_out_path: paths.serial },
    });
  }
  return requests;
}

/** The request that boots a configured machine. */
export const INSTANCE_START: ApiRequest = {
  method: "PUT",
  path: "/actions",
  body: { action_type: "InstanceStart" },
};
