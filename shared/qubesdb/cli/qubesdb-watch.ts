#!/usr/bin/env node
/** `qubesdb-watch`: see tool.ts and spec §12. */
import { main } from "./tool.js";

main("watch");
