import { useShallow } from "zustand/react/shallow";
import { availableActions, type Availability } from "../protocol/actions";
import type { CommandType } from "../protocol/types";
import { useConnectionStore } from "../store/connection";
import { useSessionStore } from "../store/session";

/** What the user can do now, from the run state and whether the view is live. */
export function useActions(): Availability {
  const connected = useConnectionStore((s) => s.status === "connected");
  return useSessionStore(
    useShallow((s) => availableActions(s.view.state, connected && s.view.sync === "live")),
  );
}

/** True while a command of this type waits for its ack (buttons stay disabled meanwhile). */
export function usePending(type: CommandType): boolean {
  return useSessionStore((s) => Object.values(s.view.pending).some((p) => p.command.type === type));
}
