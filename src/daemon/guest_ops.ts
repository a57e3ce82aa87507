/**
 * What the daemon asks of a running guest over ssh: wait until it answers,
 * power it off cleanly, and read its boot id. Behind an interface so that
 * VM lifecycle tests can run without a guest.
 *
 * @module
 */
import { closeMasterArgs } from "../ssh/control.ts";
import { sshArgs, type SshIdentity } from "../ssh/options.ts";
import { run } from "../util/exec.ts";
import {
  type GuestWait,
  type GuestWaitResult,
  waitForGuest,
} from "./guest_wait.ts";

/** A guest to talk to. */
export interface GuestTarget {
  name: string;
  ip: string;
  /** Its shared ssh connection, used when it is up (see ssh/control.ts). */
  controlPath?: string | undefined;
}

/** Guest operations the VM service needs. */
export interface GuestOps {
  /** Waits for the console marker and sshd; see {@linkcode waitForGuest}. */
  waitReady(w: Omit<GuestWait, "ssh">): Promise<GuestWaitResult>;
  /**
   * Flushes the guest's filesystems and asks it to power off, or with
   * `how` "reboot" to reboot (for VMMs that exit on a guest reboot but not
   * on a power-off). Resolves true when the request reached the guest,
   * false when ssh could not connect (the caller then ends the VMM
   * directly).
   */
  powerOff(target: GuestTarget, how?: GuestStop): Promise<boolean>;
  /**
   * Ends the guest's shared ssh connection, if one is up: a VM whose VMM
   * ended leaves a master waiting on a dead connection, and the next VM in
   * the same address slot must not find it.
   */
  closeConnection(controlPath: string | undefined): Promise<void>;
}

/** How a guest is asked to end so that its VMM exits. */
export type GuestStop = "poweroff" | "reboot";

/** Seconds ssh may take to connect before a stop gives up on the guest. */
export const STOP_CONNECT_TIMEOUT_SECONDS = 2;
/** Whole ssh command budget for a power-off request. */
const POWER_OFF_BUDGET_MS = 15_000;

/**
 * The guest's remote command for a clean stop. `sync` first, so data is on
 * the virtual disk even if the power-off itself is cut short; systemd is
 * asked without waiting (there is no D-Bus session to wait on), and plain
 * `poweroff` covers images without systemd.
 */
export const POWER_OFF_COMMAND =
  "sync && { systemctl poweroff --no-block 2>/dev/null || poweroff; }";

/** The same for a reboot. */
export const REBOOT_COMMAND =
  "sync && { systemctl reboot --no-block 2>/dev/null || reboot; }";

/** {@linkcode GuestOps} over banger's ssh identity. */
export function sshGuestOps(ssh: SshIdentity): GuestOps {
  return {
    waitReady: (w) => waitForGuest({ ...w, ssh }),
    async closeConnection(path) {
      if (path === undefined) return;
      await run("ssh", closeMasterArgs(path), { okCodes: [0, 255] }).catch(
        () => {},
      );
      await Deno.remove(path).catch(() => {});
    },
    async powerOff(target, how = "poweroff") {
      const result = await run("ssh", [
        ...sshArgs(ssh, {
          name: target.name,
          ip: target.ip,
          connectTimeoutSeconds: STOP_CONNECT_TIMEOUT_SECONDS,
          control: { path: target.controlPath, role: "client" },
        }),
        how === "reboot" ? REBOOT_COMMAND : POWER_OFF_COMMAND,
      ], {
        // 255 is ssh's own failure, which includes the guest closing the
        // connection as it goes down.
        okCodes: [0, 255],
        signal: AbortSignal.timeout(POWER_OFF_BUDGET_MS),
      }).catch(() => undefined);
      if (!result) return false;
      if (result.code === 0) return true;
      // ssh could not connect at all (refused, timed out, no route).
      return !/connect to host|timed out|No route|refused/i.test(
        result.stderr,
      );
    },
  };
}
