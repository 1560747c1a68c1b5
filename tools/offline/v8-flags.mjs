// Imported first by cli.mjs, so that its V8 flag is set before any code is hot.
//
// Node 20's V8 (11.3) sometimes stopped the whole runtime with "Fatal error
// ... unreachable code" in Deoptimizer::DoComputeBuiltinContinuation, when
// about 50 requests were in flight as the first queue batch arrived. Without
// TurboFan's inlining that deoptimization path is not taken.
import v8 from "node:v8";

v8.setFlagsFromString("--no-turbo-inlining");
