#!/usr/bin/env node
/** `qubesdb-read`: see tool.ts and spec §12. */
import { main } from "./tool.js";

main("read");
