// Serialisation of queue message bodies, and the envelope the runtime puts
// around each message it hands to Miniflare's queue broker.
//
// Bodies follow workerd v1.20260426.1 (src/workerd/api/queue.c++,
// serialize() and deserialize()): "text" needs a string, "bytes" an
// ArrayBufferView, "json" goes through JSON, and "v8" through the structured
// clone algorithm, for which Node's v8 serializer is used.

import v8 from "node:v8";

const CONTENT_TYPES = new Set(["text", "bytes", "json", "v8"]);

/** Serialises a message body for `contentType`, throwing TypeError where workerd does. */
export function encodeQueueMessage(body, contentType) {
  if (body === undefined) throw new TypeError("Message body cannot be undefined");
  const type = String(contentType).toLowerCase();
  if (!CONTENT_TYPES.has(type)) throw new TypeError(`Unsupported queue message content type: ${contentType}`);

  // Text and JSON are kept as UTF-8, as workerd sends them, so that their
  // size counts against the broker's limit as it does in production.
  let data = body;
  if (type === "text") {
    if (typeof body !== "string") {
      throw new TypeError(`Content Type "text" requires a value of type string, but received: ${typeof body}`);
    }
    data = new TextEncoder().encode(body);
  }
  if (type === "bytes") {
    if (!ArrayBuffer.isView(body)) {
      throw new TypeError(`Content Type "bytes" requires a value of type ArrayBufferView, but received: ${typeof body}`);
    }
    data = new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
  }
  if (type === "json") {
    const json = JSON.stringify(body);
    if (json === undefined) throw new TypeError(`Message body of type ${typeof body} cannot be serialized to JSON`);
    data = new TextEncoder().encode(json);
  }
  return v8.serialize({ contentType: type, data });
}

/** Returns the body that a consumer receives for a payload made by encodeQueueMessage. */
export function decodeQueueMessage(payload) {
  const { contentType, data } = v8.deserialize(payload);
  if (contentType === "text") return new TextDecoder().decode(data);
  if (contentType === "json") return JSON.parse(new TextDecoder().decode(data));
  if (contentType === "bytes") return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  return data;
}

/**
 * Wraps a journal entry for the broker. Besides the body, the envelope
 * carries what the broker would lose on a restart: the message's id and
 * timestamp, the queue it was sent to, and the deliveries it already had there.
 */
export function sealEnvelope(entry) {
  // A plain Uint8Array: Miniflare's binding proxy rejects Node's Buffer subclass.
  return new Uint8Array(
    v8.serialize({
      id: entry.id,
      queue: entry.queue,
      timestamp: entry.timestamp,
      priorAttempts: entry.attempts,
      payload: entry.payload,
    }),
  );
}

export function openEnvelope(bytes) {
  const envelope = v8.deserialize(bytes);
  if (typeof envelope?.id !== "string" || !(envelope.payload instanceof Uint8Array)) {
    throw new Error("queue message was not sent through the offline runtime's producer binding");
  }
  return envelope;
}
