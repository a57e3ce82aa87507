/**
 * Choosing the VMM driver from the configuration and the host: `vmm =
 * "auto"` takes Firecracker when `firecracker_bin` resolves and the host
 * has hardware virtualization, QEMU otherwise.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { which } from "../util/exec.ts";
import type { Logger } from "../util/log.ts";
import { firecrackerDriver, type JailSeam } from "./firecracker/driver.ts";
import { judgeVersion, probeVersion } from "./firecracker/version.ts";
import { type Accel, qemuDriver } from "./qemu.ts";
import type { VmmDriver } from "./types.ts";

/** What the choice depends on besides the configuration. */
export interface VmmHostFacts {
  accel: Accel;
  /** `firecracker_bin` resolved to a path, if it resolves. */
  firecrackerPath: string | undefined;
}

/**
 * Decides which VMM runs VMs. Throws when `vmm = "firecracker"` but the
 * binary does not resolve.
 */
export function chooseVmm(
  config: Pick<Config, "vmm" | "firecrackerBin">,
  host: VmmHostFacts,
): "firecracker" | "qemu" {
  if (config.vmm === "qemu") return "qemu";
  if (config.vmm === "firecracker") {
    if (!host.firecrackerPath) {
      throw new Error(
        `Cannot use Firecracker: "firecracker_bin" is "${config.firecrackerBin}", which does not resolve to an executable`,
      );
    }
    return "firecracker";
  }
  return host.firecrackerPath && host.accel === "kvm" ? "firecracker" : "qemu";
}

/** Services the Firecracker driver needs when it is chosen. */
export interface VmmServices {
  accel: Accel;
  tscKhz: number | undefined;
  /** The root helper's jail operations (used when the jailer is on). */
  jail: JailSeam;
  log: Logger;
}

/**
 * Builds the chosen driver. For Firecracker its version is read first:
 * older than supported is refused, newer than tested is logged as a
 * warning. Requires `--allow-run` for the firecracker binary.
 */
export async function createVmm(
  config: Config,
  services: VmmServices,
): Promise<VmmDriver> {
  const firecrackerPath = which(config.firecrackerBin);
  const choice = chooseVmm(config, { accel: services.accel, firecrackerPath });
  if (choice === "qemu") {
    return qemuDriver(config.qemuBin, {
      accel: services.accel,
      tscKhz: services.tscKhz,
    });
  }
  const version = await probeVersion(firecrackerPath!);
  const verdict = judgeVersion(version, firecrackerPath!);
  if (verdict.status === "too_old") throw new Error(verdict.error);
  if (verdict.status === "newer") {
    services.log.warn(verdict.warning, { version: version.join(".") });
  }
  services.log.info("using Firecracker", {
    bin: firecrackerPath,
    version: version.join("."),
    jailer: config.jailerEnabled,
  });
  return firecrackerDriver({
    bin: firecrackerPath!,
    version,
    jail: config.jailerEnabled ? services.jail : undefined,
    // TODO: the PCI transport (--enable-pci, Firecracker 1.13+) is faster
    // than virtio-mmio over ACPI; it stays off until a config key chooses
    // it, since guest kernels built without PCI support cannot use it.
    enablePci: false,
  });
}
