#!/usr/bin/env node
/** `qubesdb-write`: see tool.ts and spec §12. */
import { main } from "./tool.js";

main("write");
