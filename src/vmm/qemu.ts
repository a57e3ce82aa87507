/**
 * The QEMU driver: `qemu-system-x86_64 -M microvm` with virtio-mmio devices
 * described through ACPI (Debian kernels cannot take them from the command
 * line), KVM where the CPU offers hardware virtualization and TCG with
 * several threads elsewhere.
 *
 * @module
 */
import { join } from "node:path";
import { run } from "../util/exec.ts";
import { readProcFile } from "../util/procfs.ts";
import { endProcess, processMatches, waitGone } from "./process.ts";
import { qmp } from "./qmp.ts";
import type { LaunchSpec, VmmDriver, VmmHandles } from "./types.ts";

/** The accelerator QEMU uses. */
export type Accel = "kvm" | "tcg";

/** Host facts the QEMU command line depends on. */
export interface QemuHost {
  accel: Accel;
  /** Host TSC frequency in kHz; TCG guests need it (see below). */
  tscKhz: number | undefined;
}

/** Files the driver keeps in the VM's directory. */
export const QEMU_FILES = { pid: "vmm.pid" } as const;

/**
 * Builds QEMU's argv for `spec`.
 *
 * Under TCG the microvm machine has no HPET or ACPI PM timer and its PIT
 * calibration fails often enough that about a third of boots hang, so the
 * kernel is told the TSC frequency instead (`tsc_early_khz`).
 */
export function qemuArgs(spec: LaunchSpec, host: QemuHost): string[] {
  const cmdline = [...spec.cmdline];
  if (host.accel === "tcg" && host.tscKhz) {
    cmdline.push(`tsc_early_khz=${host.tscKhz}`);
  }
  const args = [
    "-name",
    `${spec.name},process=banger-${spec.id}`,
    "-M",
    "microvm,acpi=on",
    "-accel",
    host.accel === "tcg" ? "tcg,thread=multi" : "kvm",
    "-cpu",
    host.accel === "kvm" ? "host" : "max",
    "-smp",
    String(spec.vcpu),
    "-m",
    `${spec.memoryMib}M`,
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
    "-serial",
    `file:${spec.consoleLog}`,
    "-kernel",
    spec.kernel,
    ...(spec.initrd ? ["-initrd", spec.initrd] : []),
    "-append",
    cmdline.join(" "),
  ];
  for (const drive of spec.drives) {
    args.push(
      "-drive",
      [
        `id=${drive.id}`,
        `file=${escapeOption(drive.path)}`,
        `format=${drive.format}`,
        "if=none",
        ...(drive.readOnly ? ["readonly=on"] : []),
      ].join(","),
      "-device",
      `virtio-blk-device,drive=${drive.id}`,
    );
  }
  args.push(
    "-netdev",
    `tap,id=net0,ifname=${spec.net.tap},script=no,downscript=no`,
    "-device",
    `virtio-net-device,netdev=net0,mac=${spec.net.mac}`,
    "-qmp",
    `unix:${escapeOption(spec.controlSocket)},server=on,wait=off`,
    // QEMU forks into the background, in its own session, once the machine
    // is set up, so it outlives the request and the daemon.
    "-daemonize",
    "-pidfile",
    join(spec.dir, QEMU_FILES.pid),
  );
  return args;
}

/** QEMU option values escape commas by doubling them. */
function escapeOption(value: string): string {
  return value.replaceAll(",", ",,");
}

/** Creates the QEMU driver for `bin` on a host described by `host`. */
export function qemuDriver(bin: string, host: QemuHost): VmmDriver {
  return {
    name: "qemu",
    async launch(spec: LaunchSpec): Promise<VmmHandles> {
      await run(bin, qemuArgs(spec, host));
      const pid = Number(
        (await Deno.readTextFile(join(spec.dir, QEMU_FILES.pid))).trim(),
      );
      if (!Number.isInteger(pid) || pid <= 0) {
        throw new Error(`Cannot start VM "${spec.name}": QEMU wrote no pid`);
      }
      return {
        vmm: "qemu",
        pid,
        controlSocket: spec.controlSocket,
      };
    },
    isAlive(handles, dir) {
      return processMatches(handles.pid, dir);
    },
    async terminate(handles, dir, timeoutMs = 3000) {
      if (!(await processMatches(handles.pid, dir))) return;
      try {
        await qmp(handles.controlSocket, "quit");
        if (await waitGone(handles.pid, dir, timeoutMs)) return;
      } catch {
        // QMP unreachable: fall back to signals.
      }
      await endProcess(handles.pid, dir, timeoutMs);
    },
  };
}

/**
 * Picks the accelerator: `kvm` only when /dev/kvm exists and the CPU has
 * vmx or svm. A KVM without them (a paravirtual backend) runs ordinary
 * guest kernels far slower than TCG, so it does not count.
 */
export async function detectAccel(
  wanted: "auto" | Accel,
  cpuinfoPath = "/proc/cpuinfo",
): Promise<Accel> {
  if (wanted !== "auto") return wanted;
  const cpuinfo = await readProcFile(cpuinfoPath).catch(() => "");
  const flags = cpuinfo.match(/^flags\s*:(.*)$/m)?.[1]?.split(/\s+/) ?? [];
  const hardware = flags.includes("vmx") || flags.includes("svm");
  const device = await Deno.stat("/dev/kvm").then(() => true, () => false);
  return hardware && device ? "kvm" : "tcg";
}

/** Reads the host TSC frequency (kHz) from /proc/cpuinfo's `cpu MHz`. */
export async function hostTscKhz(
  cpuinfoPath = "/proc/cpuinfo",
): Promise<number | undefined> {
  const cpuinfo = await readProcFile(cpuinfoPath).catch(() => "");
  const mhz = Number(cpuinfo.match(/^cpu MHz\s*:\s*([\d.]+)/m)?.[1]);
  return Number.isFinite(mhz) && mhz > 0 ? Math.round(mhz * 1000) : undefined;
}
