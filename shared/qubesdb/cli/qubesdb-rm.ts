#!/usr/bin/env node
/** `qubesdb-rm`: see tool.ts and spec §12. */
import { main } from "./tool.js";

main("rm");
