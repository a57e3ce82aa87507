/**
 * The daemon's only way to change the host: requests to the root helper.
 * Tests can replace this seam.
 *
 * @module
 */
import { z } from "zod";
import { call } from "../rpc/client.ts";
import { RpcError } from "../protocol/envelope.ts";
import {
  HelperPingResultSchema,
  NatDownResultSchema,
  ResolverRouteResultSchema,
} from "../protocol/helper.ts";

/** Privileged network operations the daemon needs. */
export interface HostNetwork {
  ensureBridge(name: string, address: string, prefix: number): Promise<void>;
  createTap(name: string, bridge: string, owner: number): Promise<void>;
  deleteTap(name: string): Promise<void>;
  /** NAT for the guest at `address` behind `tap` (idempotent). */
  natUp(tap: string, address: string, bridge: string): Promise<void>;
  /** Removes the NAT rules of `tap`; returns how many there were. */
  natDown(tap: string): Promise<number>;
  /** Routes `~vm` to the daemon's DNS port where systemd-resolved runs. */
  routeResolver(
    bridge: string,
    port: number,
  ): Promise<z.infer<typeof ResolverRouteResultSchema>>;
}

const NameResultSchema = z.strictObject({ name: z.string() });

/** {@linkcode HostNetwork} through the helper's socket. */
export class HelperClient implements HostNetwork {
  constructor(readonly socket: string) {}

  async ping(): Promise<z.infer<typeof HelperPingResultSchema>> {
    return await this.#call("ping", {}, HelperPingResultSchema);
  }

  async ensureBridge(name: string, address: string, prefix: number) {
    await this.#call(
      "bridge.ensure",
      { name, address, prefix },
      NameResultSchema,
    );
  }

  async createTap(name: string, bridge: string, owner: number) {
    await this.#call("tap.create", { name, bridge, owner }, NameResultSchema);
  }

  async deleteTap(name: string) {
    await this.#call("tap.delete", { name }, NameResultSchema);
  }

  async natUp(tap: string, address: string, bridge: string) {
    await this.#call(
      "nat.up",
      { tap, address, bridge },
      z.strictObject({ tap: z.string() }),
    );
  }

  async natDown(tap: string) {
    return (await this.#call("nat.down", { tap }, NatDownResultSchema))
      .removed;
  }

  async routeResolver(bridge: string, port: number) {
    return await this.#call(
      "resolver.route",
      { bridge, port },
      ResolverRouteResultSchema,
    );
  }

  async #call<T extends z.ZodType>(
    method: string,
    params: unknown,
    schema: T,
  ): Promise<z.infer<T>> {
    try {
      return await call(this.socket, method, params, schema);
    } catch (error) {
      if (
        error instanceof Deno.errors.NotFound ||
        error instanceof Deno.errors.ConnectionRefused
      ) {
        throw new RpcError(
          "operation_failed",
          `Cannot reach the root helper at "${this.socket}": it is not running (any banger command run as root starts it again)`,
        );
      }
      throw error;
    }
  }
}
