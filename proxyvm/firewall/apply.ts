/**
 * The thin applier: hands compiled scripts to the nft adapter, one script =
 * one kernel transaction. Small scripts (a one-VM update, a removal, a VM
 * blocked) go through a long-lived `nft -i` session, which saves a process
 * per change; large ones (a full reload) and anything after the session died
 * go through `nft -f`. Kept behind an interface so the component's logic can
 * be unit-tested, never as proof that the kernel accepts a script (the
 * integration tests do that).
 */
import { applyNftScript, type NftSession, openNftSession } from "../system/nft.js";

export interface NftApplier {
  /** Applies a script as one transaction; rejects with nft's message (it names the failing line). */
  apply(script: string): Promise<void>;
  /** Ends the session, if any. */
  close?(): void;
}

/** Above this size a script is run by its own `nft -f`: a reload is rare, and one line that long gains nothing. */
const SESSION_MAX_SCRIPT = 256 * 1024;

export function createNftApplier(options: { netns?: string; session?: boolean } = {}): NftApplier {
  const nftOptions = options.netns === undefined ? {} : { netns: options.netns };
  let session: NftSession | undefined;
  let sessionDead = false;
  return {
    async apply(script) {
      if (options.session === false || script.length > SESSION_MAX_SCRIPT) {
        return applyNftScript(script, nftOptions);
      }
      if (session === undefined || sessionDead) {
        session?.close();
        session = openNftSession(nftOptions);
        sessionDead = false;
      }
      try {
        await session.apply(script);
      } catch (error) {
        if (!(error instanceof Error) || !error.message.includes("the nft session has ended")) throw error;
        // the session died (nft killed, namespace gone): this script by a process of its own
        sessionDead = true;
        await applyNftScript(script, nftOptions);
      }
    },
    close() {
      session?.close();
      session = undefined;
    },
  };
}
