/**
 * The VM lifecycle's NAT hooks. NAT is opt-in per VM (`--nat`, stored in
 * the VM's row); the helper keys every rule on the VM's tap, which is in
 * durable state, so rules can be removed after a daemon crash from the row
 * alone.
 *
 * Call {@linkcode natOnStart} once the tap exists (create, start, and when
 * reconcile adopts a running VM) and {@linkcode natOnStop} on every
 * cleanup (stop, kill, failed start, delete, reconcile of a dead VM): both
 * are idempotent.
 *
 * @module
 */
import type { HostNetwork } from "./host_network.ts";

/** What the hooks read of a VM's row. */
export interface NatVm {
  tap: string;
  ip: string;
  nat: number | boolean;
}

/** Installs the VM's NAT rules when it has `--nat`; else removes any. */
export async function natOnStart(
  network: HostNetwork,
  vm: NatVm,
  bridge: string,
): Promise<void> {
  if (vm.nat) await network.natUp(vm.tap, vm.ip, bridge);
  else await network.natDown(vm.tap);
}

/** Removes the VM's NAT rules (whatever its flag says; none is fine). */
export async function natOnStop(
  network: HostNetwork,
  vm: Pick<NatVm, "tap">,
): Promise<void> {
  await network.natDown(vm.tap);
}
