// The thread: the brief and feedback ("You") and each agent's answer streaming as Markdown, with
// its tool calls (files written, read, listed, deleted) as compact rows in the text, plus short
// notices (gates, errors, completion). It follows the newest text while the reader is at
// the bottom, stops when they scroll up, and offers "Jump to latest".

import { memo, type ReactNode, useCallback, useDeferredValue, useEffect, useLayoutEffect, useRef, useState } from "react";
import { INTERRUPT_WORDS, type ChatMessage, type Notice } from "../protocol/reducer";
import { STAGE_LABEL } from "../protocol/types";
import { useSessionStoreApi, useSessionView } from "../store/session";
import { useConnectionLost, useConnectionStore } from "../store/connection";
import { cn } from "../lib/cn";
import { formatClock } from "../lib/format";
import { Markdown } from "./Markdown";
import { ReasoningBlock } from "./ReasoningBlock";
import { ToolCallRow } from "./ToolCallRow";
import { Button } from "./ui/button";

const STICK_THRESHOLD_PX = 48;

type Insert = { kind: "tool" | "reasoning"; id: string; offset: number; order: number };

/**
 * A message's tool calls and reasoning blocks in the order they began: by text offset, and at
 * the same offset a block that began after k calls goes after the k-th call.
 */
function insertsOf(toolCalls: ChatMessage["toolCalls"], reasoning: ChatMessage["reasoning"]): Insert[] {
  const inserts: Insert[] = toolCalls.map((ref, i) => ({ kind: "tool", id: ref.id, offset: ref.offset, order: i }));
  reasoning.forEach((ref, i) => inserts.push({ kind: "reasoning", id: ref.id, offset: ref.offset, order: ref.afterToolCalls - 1 + (i + 1) / (reasoning.length + 1) }));
  return inserts.sort((a, b) => a.offset - b.offset || a.order - b.order);
}

/**
 * An agent's answer: its text as Markdown, with each tool call as a row and each reasoning block
 * ("Thinking…") at the place in the text where it began (they interleave in one answer).
 */
function AnswerBody({ content, toolCalls, reasoning }: { content: string; toolCalls: ChatMessage["toolCalls"]; reasoning: ChatMessage["reasoning"] }) {
  if (toolCalls.length === 0 && reasoning.length === 0) return <Markdown text={content} />;
  const parts: ReactNode[] = [];
  let from = 0;
  for (const ref of insertsOf(toolCalls, reasoning)) {
    const to = Math.max(from, Math.min(ref.offset, content.length));
    const text = content.slice(from, to);
    if (text.trim()) parts.push(<Markdown key={`t-${from}`} text={text} />);
    parts.push(ref.kind === "tool" ? <ToolCallRow key={ref.id} id={ref.id} /> : <ReasoningBlock key={ref.id} id={ref.id} />);
    from = to;
  }
  const rest = content.slice(from);
  if (rest.trim()) parts.push(<Markdown key={`t-${from}`} text={rest} />);
  return <>{parts}</>;
}

/** The line at the end of the thread while the connection is lost: what happened and that nothing will be missed. */
function ConnectionLostLine() {
  const lost = useConnectionLost();
  const offline = useConnectionStore((s) => s.status === "offline" && s.offlineReason === "no_network");
  if (lost === null) return null;
  return (
    <li role="status" data-testid="connection-lost-note" className="rounded-lg border border-amber-300 bg-amber-50 p-3 text-sm text-amber-950">
      <strong className="font-semibold">Connection lost at {formatClock(lost)}.</strong>{" "}
      {offline ? "This device is offline; the page reconnects when the network is back." : "The page tries again every few seconds."} Nothing
      will be missed: whatever the agents do meanwhile appears here when it reconnects.
    </li>
  );
}

const MessageItem = memo(function MessageItem({ id }: { id: string }) {
  const message = useSessionView((s) => s.view.messages[id]);
  // While tokens stream in, React may skip intermediate renders of the Markdown under load.
  const content = useDeferredValue(message?.content ?? "");
  const lost = useConnectionLost();
  if (!message) return null;
  const isUser = message.role === "user";
  return (
    <li
      data-testid="message"
      data-name={message.name}
      data-role={message.role}
      data-streaming={message.streaming ? "true" : "false"}
      data-message-id={message.id}
      className={cn("rounded-lg border p-3", isUser ? "border-sky-200 bg-sky-50" : "border-slate-200 bg-white")}
    >
      <div className="mb-1 flex flex-wrap items-center gap-2 text-xs">
        <span className={cn("font-semibold", isUser ? "text-sky-900" : "text-indigo-900")}>{message.name}</span>
        {message.at ? <time className="text-slate-600" dateTime={new Date(message.at).toISOString()}>{formatClock(message.at)}</time> : null}
        {message.streaming && lost === null ? (
          <span className="inline-flex items-center gap-1 text-indigo-700" data-testid="message-writing">
            <span className="h-1.5 w-1.5 animate-pulse rounded-full bg-indigo-500" aria-hidden="true" />
            writing…
          </span>
        ) : message.streaming ? (
          <span className="text-amber-800" data-testid="message-stalled">
            (connection lost: the rest arrives when it is back)
          </span>
        ) : null}
        {message.interrupted ? (
          <span className="text-amber-800">({message.interrupted === "interrupted" ? "cut short" : INTERRUPT_WORDS[message.interrupted]})</span>
        ) : null}
      </div>
      {isUser ? (
        // The brief and feedback are shown exactly as typed: plain text, never HTML or Markdown.
        <p className="whitespace-pre-wrap break-words text-sm text-slate-900" data-testid="message-text">
          {message.content}
        </p>
      ) : (
        <div className={cn("text-sm", message.interrupted && "opacity-70")} data-testid="message-text">
          <AnswerBody content={content} toolCalls={message.toolCalls} reasoning={message.reasoning} />
        </div>
      )}
    </li>
  );
});

/**
 * An agent thinking before its answer has begun: the agent's turn so far. When the answer starts,
 * the block moves into it (the reducer adopts it), so the turn reads "thinking, then the answer".
 */
const ReasoningTurn = memo(function ReasoningTurn({ id }: { id: string }) {
  const agent = useSessionView((s) => s.view.reasoning[id]?.agent);
  const at = useSessionView((s) => s.view.reasoning[id]?.startedAt ?? null);
  if (agent === undefined) return null;
  return (
    <li data-testid="reasoning-turn" data-name={agent} className="rounded-lg border border-slate-200 bg-white p-3">
      <div className="mb-1 flex flex-wrap items-center gap-2 text-xs">
        <span className="font-semibold text-indigo-900">{agent}</span>
        {at ? <time className="text-slate-600" dateTime={new Date(at).toISOString()}>{formatClock(at)}</time> : null}
      </div>
      <ReasoningBlock id={id} />
    </li>
  );
});

const toneClass: Record<Notice["tone"], string> = {
  info: "border-indigo-200 bg-indigo-50 text-indigo-900",
  success: "border-emerald-200 bg-emerald-50 text-emerald-900",
  warning: "border-amber-200 bg-amber-50 text-amber-900",
  error: "border-red-200 bg-red-50 text-red-900",
};

/** Whether `id` is the newest gate notice and that gate is still open. */
function gateStillOpen(timeline: readonly { kind: string; id: string }[], gateOpen: boolean, id: string): boolean {
  if (!gateOpen) return false;
  for (let i = timeline.length - 1; i >= 0; i--) {
    const item = timeline[i]!;
    if (item.kind === "notice" && (item as Notice).gate) return item.id === id;
  }
  return false;
}

const NoticeItem = memo(function NoticeItem({ notice }: { notice: Notice }) {
  // A gate's "review the … work" stays true only while that gate is open; after, it says it was answered.
  const open = useSessionView((s) => (notice.gate ? gateStillOpen(s.view.timeline, s.view.state?.gate != null, notice.id) : true));
  if (notice.gate && !open) {
    return (
      <li data-testid="notice" data-tone="answered" className="rounded-md border border-slate-200 bg-white px-3 py-1 text-xs text-slate-600">
        {notice.stage ? `${STAGE_LABEL[notice.stage]}'s work was answered.` : "The gate was answered."}
      </li>
    );
  }
  return (
    <li data-testid="notice" data-tone={notice.tone} className={cn("rounded-md border px-3 py-2 text-sm", toneClass[notice.tone])}>
      {notice.text}
    </li>
  );
});

/** Bounded history: the server's snapshot left out the oldest messages; say so, quietly. */
function OmittedNotice() {
  const omitted = useSessionView((s) => s.view.omittedMessages);
  if (omitted <= 0) return null;
  return (
    <p data-testid="history-bounded" className="mb-2 text-center text-xs text-slate-500">
      {omitted === 1 ? "1 older message is not shown" : `${omitted} older messages are not shown`} (history is bounded)
    </p>
  );
}

export function Conversation() {
  const timeline = useSessionView((s) => s.view.timeline);
  const store = useSessionStoreApi();
  const scroller = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const [showJump, setShowJump] = useState(false);

  const lastTop = useRef(0);

  const scrollToBottom = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    el.scrollTop = el.scrollHeight;
    lastTop.current = el.scrollTop;
  }, []);

  // Only the reader moving up unsticks the view. Scroll events arrive a frame late, by which time
  // more text may have made the distance to the bottom large, so distance alone would misread
  // our own scrolling as the reader's.
  const onScroll = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    const top = el.scrollTop;
    const atBottom = el.scrollHeight - top - el.clientHeight <= STICK_THRESHOLD_PX;
    if (atBottom) {
      stick.current = true;
      setShowJump(false);
    } else if (top < lastTop.current - 2) {
      stick.current = false;
    }
    lastTop.current = top;
  }, []);

  // Follow new text: any change to the thread's messages schedules one scroll per frame.
  useEffect(() => {
    let frame = 0;
    const unsubscribe = store.subscribe((s, prev) => {
      if (
        s.view.messages === prev.view.messages &&
        s.view.timeline === prev.view.timeline &&
        s.view.toolCalls === prev.view.toolCalls &&
        s.view.reasoning === prev.view.reasoning
      )
        return;
      if (!stick.current) {
        setShowJump(true);
        return;
      }
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        if (stick.current) scrollToBottom();
      });
    });
    return () => {
      unsubscribe();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [scrollToBottom, store]);

  useLayoutEffect(() => {
    if (stick.current) scrollToBottom();
  }, [timeline, scrollToBottom]);

  const jump = () => {
    stick.current = true;
    setShowJump(false);
    scrollToBottom();
  };

  return (
    <section aria-labelledby="conversation-title" className="relative">
      <h2 id="conversation-title" className="mb-2 text-sm font-semibold uppercase tracking-wide text-slate-500">
        Conversation
      </h2>
      <div
        ref={scroller}
        onScroll={onScroll}
        tabIndex={0}
        aria-label="Conversation messages"
        data-testid="conversation"
        className="max-h-[65vh] min-h-40 overflow-y-auto [overflow-anchor:none] rounded-lg border border-slate-200 bg-slate-50 p-2 focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 sm:p-3"
      >
        <OmittedNotice />
        {timeline.length === 0 ? (
          <p className="p-4 text-center text-sm text-slate-500">Nothing yet. The brief and every agent's answer appear here as they are written.</p>
        ) : (
          <ol className="flex flex-col gap-2">
            {timeline.map((item) =>
              item.kind === "message" ? (
                <MessageItem key={item.id} id={item.id} />
              ) : item.kind === "reasoning" ? (
                <ReasoningTurn key={item.id} id={item.id} />
              ) : (
                <NoticeItem key={item.id} notice={item} />
              ),
            )}
            <ConnectionLostLine />
          </ol>
        )}
      </div>
      {showJump ? (
        <div className="pointer-events-none absolute inset-x-0 bottom-3 flex justify-center">
          <Button size="sm" variant="primary" className="pointer-events-auto shadow-lg" data-testid="jump-to-latest" onClick={jump}>
            Jump to latest ↓
          </Button>
        </div>
      ) : null}
    </section>
  );
}
