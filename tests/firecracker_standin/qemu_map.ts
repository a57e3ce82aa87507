/**
 * How the stand-in turns a Firecracker machine configuration into a QEMU
 * microvm command line. Firecracker's semantics are kept where a guest can
 * notice them: the root drive is the first disk (`/dev/vda`) and the kernel
 * is told so (`root=/dev/vda rw|ro`), drives are raw files, `pci=off` is
 * added, the serial console goes to `serial_out_path` or to stdout, and a
 * guest reboot ends the process.
 *
 * @module
 */

/** The parts of Firecracker's configuration the stand-in boots. */
export interface MachineState {
  machine: { vcpu_count: number; mem_size_mib: number; smt?: boolean };
  boot: { kernel_image_path: string; initrd_path?: string; boot_args?: string };
  drives: {
    drive_id: string;
    path_on_host: string;
    is_root_device: boolean;
    is_read_only?: boolean;
    partuuid?: string;
    cache_type?: "Unsafe" | "Writeback";
  }[];
  nets: { iface_id: string; host_dev_name: string; guest_mac?: string }[];
  serialOutPath: string | undefined;
  enablePci: boolean;
}

/** Host facts the QEMU command line depends on. */
export interface QemuHostFacts {
  accel: "kvm" | "tcg";
  tscKhz: number | undefined;
}

/** Firecracker's boot arguments when `boot_args` is not given. */
export const DEFAULT_BOOT_ARGS =
  "reboot=k panic=1 pci=off nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd";

/** The kernel command line Firecracker would hand the guest. */
export function guestCmdline(state: MachineState, host: QemuHostFacts): string {
  const parts = [state.boot.boot_args ?? DEFAULT_BOOT_ARGS];
  const root = state.drives.find((d) => d.is_root_device);
  if (root) {
    parts.push(
      root.partuuid ? `root=PARTUUID=${root.partuuid}` : "root=/dev/vda",
      root.is_read_only ? "ro" : "rw",
    );
  }
  if (!state.enablePci) parts.push("pci=off");
  // Under TCG the microvm machine's timer calibration hangs about a third
  // of boots unless the kernel is told the TSC frequency.
  if (host.accel === "tcg" && host.tscKhz) {
    parts.push(`tsc_early_khz=${host.tscKhz}`);
  }
  return parts.join(" ");
}

/** Drives in the order Firecracker attaches them: the root device first. */
export function attachOrder(
  drives: MachineState["drives"],
): MachineState["drives"] {
  return [
    ...drives.filter((d) => d.is_root_device),
    ...drives.filter((d) => !d.is_root_device),
  ];
}

/** Builds QEMU's argv (without the program) for `state`. */
export function qemuArgv(state: MachineState, host: QemuHostFacts): string[] {
  const pci = state.enablePci;
  const args = [
    "-M",
    `microvm,acpi=on${pci ? ",pcie=on" : ""}`,
    "-accel",
    host.accel === "tcg" ? "tcg,thread=multi" : "kvm",
    "-cpu",
    host.accel === "kvm" ? "host" : "max",
    "-smp",
    String(state.machine.vcpu_count),
    "-m",
    `${state.machine.mem_size_mib}M`,
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    // Firecracker exits when the guest reboots (reboot=k), and stays when
    // it powers off: x86 Firecracker has no power-off device, so a halted
    // guest leaves the process running until it is ended.
    "-no-reboot",
    "-no-shutdown",
    "-chardev",
    state.serialOutPath
      ? `file,id=serial0,path=${escape(state.serialOutPath)},append=on`
      : "file,id=serial0,path=/dev/stdout",
    "-serial",
    "chardev:serial0",
    "-kernel",
    state.boot.kernel_image_path,
    ...(state.boot.initrd_path ? ["-initrd", state.boot.initrd_path] : []),
    "-append",
    guestCmdline(state, host),
  ];
  const device = (kind: "blk" | "net") =>
    pci ? `virtio-${kind}-pci` : `virtio-${kind}-device`;
  for (const drive of attachOrder(state.drives)) {
    args.push(
      "-drive",
      [
        `id=${drive.drive_id}`,
        `file=${escape(drive.path_on_host)}`,
        // Firecracker takes raw files only; a qcow2 file boots as garbage.
        "format=raw",
        "if=none",
        `readonly=${drive.is_read_only ? "on" : "off"}`,
        `cache=${drive.cache_type === "Writeback" ? "writeback" : "unsafe"}`,
      ].join(","),
      "-device",
      `${device("blk")},drive=${drive.drive_id}`,
    );
  }
  for (const net of state.nets) {
    args.push(
      "-netdev",
      `tap,id=${net.iface_id},ifname=${net.host_dev_name},script=no,downscript=no`,
      "-device",
      `${device("net")},netdev=${net.iface_id}${
        net.guest_mac ? `,mac=${net.guest_mac}` : ""
      }`,
    );
  }
  return args;
}

function escape(value: string): string {
  return value.replaceAll(",", ",,");
}
