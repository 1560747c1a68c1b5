// The failure rule of src/jobqueue/simulation.py, ported to JavaScript so the
// benchmark can create jobs until every outcome is present without polling
// the Worker (a poll would add KV reads to the counts). The KV part compares
// each job's observed outcome with this prediction, so a port that drifts
// from the Python rule shows up as mismatches in its output.

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fnv1a32(bytes) {
  let value = FNV_OFFSET_BASIS;
  for (const byte of bytes) {
    value = Math.imul(value ^ byte, FNV_PRIME) >>> 0;
  }
  return value;
}

// murmur3's 32-bit finaliser.
function fmix32(value) {
  value ^= value >>> 16;
  value = Math.imul(value, 0x85ebca6b) >>> 0;
  value ^= value >>> 13;
  value = Math.imul(value, 0xc2b2ae35) >>> 0;
  value ^= value >>> 16;
  return value >>> 0;
}

export function attemptFails(jobId, attempt, failurePercent) {
  const roll = fmix32(fnv1a32(new TextEncoder().encode(`${jobId}:${attempt}`))) % 100;
  return roll < failurePercent;
}

/** Returns the outcome a new job will reach: "done_1" ... "done_<maxAttempts>" or "failed". */
export function predictOutcome(jobId, failurePercent, maxAttempts) {
  for (let attempt = 1; attempt <= maxAttempts; attempt += 1) {
    if (!attemptFails(jobId, attempt, failurePercent)) return `done_${attempt}`;
  }
  return "failed";
}

/** Returns the outcome key of a finished job record, or undefined while the job is not finished. */
export function outcomeOf(record) {
  if (record.status === "done") return `done_${record.attempts}`;
  if (record.status === "failed") return "failed";
  return undefined;
}
