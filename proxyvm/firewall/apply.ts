/**
 * The thin applier: hands compiled scripts to the nft adapter, one script =
 * one `nft -f` run = one kernel transaction. Kept behind an interface so the
 * component's logic can be unit-tested, never as proof that the kernel
 * accepts the script (the integration tests do that).
 */
import { applyNftScript } from "../system/nft.js";

export interface NftApplier {
  /** Applies a script as one transaction; rejects with nft's message (it names the failing line). */
  apply(script: string): Promise<void>;
}

export function createNftApplier(options: { netns?: string } = {}): NftApplier {
  const nftOptions = options.netns === undefined ? {} : { netns: options.netns };
  return { apply: (script) => applyNftScript(script, nftOptions) };
}
