// Keeps a rendering fault in one part of the page from blanking the rest: the failing part is
// replaced by a short message with a "try again" button and the error's details.

import { Component, type ErrorInfo, type ReactNode } from "react";

interface Props {
  /** What the guarded part is, in words ("the conversation"). */
  label: string;
  children: ReactNode;
}

interface State {
  error: Error | null;
}

export class ErrorBoundary extends Component<Props, State> {
  override state: State = { error: null };

  static getDerivedStateFromError(error: Error): State {
    return { error };
  }

  override componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error(`BotArmy: ${this.props.label} failed to render`, error, info.componentStack);
  }

  override render(): ReactNode {
    const { error } = this.state;
    if (!error) return this.props.children;
    return (
      <div role="alert" data-testid="render-error" className="rounded-lg border-2 border-red-300 bg-red-50 p-4 text-sm text-red-900">
        <p className="font-semibold">Part of the page could not be shown ({this.props.label}).</p>
        <p className="mt-1">The rest of the page keeps working, and the session goes on at the server.</p>
        <div className="mt-3 flex flex-wrap gap-2">
          <button
            type="button"
            className="rounded-md border border-red-400 bg-white px-3 py-1.5 font-medium hover:bg-red-100 focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-red-500"
            onClick={() => this.setState({ error: null })}
          >
            Try again
          </button>
        </div>
        <details className="mt-2">
          <summary className="cursor-pointer">Details</summary>
          <pre className="mt-1 overflow-x-auto whitespace-pre-wrap text-xs">{String(error.stack ?? error.message)}</pre>
        </details>
      </div>
    );
  }
}
