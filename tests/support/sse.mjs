// One reader of server-sent events for every test, double and benchmark: `eventsource-parser`
// (the WHATWG parsing rules: ids, multi-line data, comments, CRLF), wrapped for whole texts and
// for the lines a stream delivers piece by piece.
import { createParser } from 'eventsource-parser';

/**
 * An SSE text → its events and comments in order: `{id, event, data}` (`id` a number when it is
 * one, else the string or null; `data` parsed as JSON when it is JSON, else the raw string;
 * with `{raw: true}` always the raw string) or `{comment}` (the text after `:` and one space).
 */
export function parseSse(text, { raw = false } = {}) {
  const out = [];
  const parser = createParser({
    onEvent: (e) => out.push({ id: idOf(e.id), event: e.event ?? null, data: raw ? e.data : dataOf(e.data) }),
    onComment: (comment) => out.push({ comment }),
  });
  parser.feed(text);
  return out;
}

/**
 * A parser fed piece by piece (chunks of a response body, as text): calls `onEvent({id, event,
 * data})` and `onComment(text)` as each completes. Returns `{feed(text), reset()}`.
 */
export function sseReader({ onEvent = () => {}, onComment = () => {} } = {}) {
  return createParser({
    onEvent: (e) => onEvent({ id: idOf(e.id), event: e.event ?? null, data: dataOf(e.data) }),
    onComment,
  });
}

function idOf(id) {
  if (id === undefined || id === '') return null;
  return /^\d+$/.test(id) ? Number(id) : id;
}

function dataOf(data) {
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}
