/**
 * The jailer operations of the root helper, as the daemon calls them: the
 * privileged half of a jailed Firecracker launch.
 *
 * @module
 */
import { call } from "../rpc/client.ts";
import {
  JailDoneResultSchema,
  type JailLaunchParams,
  type JailLaunchResult,
  JailLaunchResultSchema,
} from "../protocol/jail.ts";
import type { JailSeam } from "../vmm/firecracker/driver.ts";

/** {@linkcode JailSeam} through the helper's socket. */
export class HelperJail implements JailSeam {
  constructor(readonly socket: string) {}

  async launch(params: JailLaunchParams): Promise<JailLaunchResult> {
    return await call(
      this.socket,
      "jail.launch",
      params,
      JailLaunchResultSchema,
    );
  }

  async terminate(id: string): Promise<void> {
    await call(this.socket, "jail.terminate", { id }, JailDoneResultSchema);
  }
}
