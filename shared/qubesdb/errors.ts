/** Typed QubesDB client errors, subclasses of the project's errors by meaning. */
import { InvalidInputError, NotFoundError, SystemError } from "../errors.js";

/** The key does not exist (the daemon answered RESP_ERROR_NOENT to a READ). */
export class QubesDbNotFoundError extends NotFoundError {
  override name = "QubesDbNotFoundError";
  constructor(readonly key: string) {
    super(`Cannot read "${key}": no such key`);
  }
}

/** The daemon sent something the protocol does not allow, or refused a request with RESP_ERROR. */
export class QubesDbProtocolError extends SystemError {
  override name = "QubesDbProtocolError";
}

/** The daemon answered RESP_ERROR (for example a WRITE on the read-only socket). */
export class QubesDbRefusedError extends QubesDbProtocolError {
  override name = "QubesDbRefusedError";
}

/** The connection is closed or was lost before the reply arrived, or no daemon could be reached. */
export class QubesDbDisconnectedError extends SystemError {
  override name = "QubesDbDisconnectedError";
}

/** A key, prefix or value refused before sending; the message names the key. */
export class QubesDbInvalidInputError extends InvalidInputError {
  override name = "QubesDbInvalidInputError";
}
