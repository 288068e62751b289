// Safe Markdown: react-markdown without rehype-raw, so any HTML in an agent's answer or an artifact
// is shown as text and never becomes elements; javascript: and other unsafe URLs are dropped by
// react-markdown's default urlTransform. Links open in a new tab without an opener.

import { memo } from "react";
import ReactMarkdown, { type Components } from "react-markdown";
import remarkGfm from "remark-gfm";

// An answer's own headings sit under the page's (h1 the page, h2 "Conversation"/"Artifacts", h3 a
// card): its "#" becomes h3 … so the page keeps one <h1> and an outline that reads in order.
// The class keeps each level's look.
const components: Components = {
  h1: ({ node: _node, className: _c, ...props }) => <h3 className="md-h1" {...props} />,
  h2: ({ node: _node, className: _c, ...props }) => <h4 className="md-h2" {...props} />,
  h3: ({ node: _node, className: _c, ...props }) => <h5 className="md-h3" {...props} />,
  h4: ({ node: _node, className: _c, ...props }) => <h6 className="md-h3" {...props} />,
  h5: ({ node: _node, className: _c, ...props }) => <h6 className="md-h3" {...props} />,
  h6: ({ node: _node, className: _c, ...props }) => <h6 className="md-h3" {...props} />,
  a: ({ node: _node, ...props }) => <a {...props} target="_blank" rel="noopener noreferrer nofollow" />,
  // Code blocks scroll sideways; keyboard users must be able to reach them.
  pre: ({ node: _node, ...props }) => <pre {...props} tabIndex={0} />,
  // GFM task-list boxes are read-only: show them as labelled symbols, not unlabelled inputs.
  input: ({ node: _node, type, checked }) =>
    type === "checkbox" ? (
      <span role="img" aria-label={checked ? "done" : "to do"} className="mr-1 inline-block w-4 text-center">
        {checked ? "☑" : "☐"}
      </span>
    ) : null,
  img: ({ node: _node, alt }) => <span className="text-slate-500">[image: {alt || "no description"}]</span>,
};

const plugins = [remarkGfm];

export const Markdown = memo(function Markdown({ text }: { text: string }) {
  return (
    <div className="md">
      <ReactMarkdown remarkPlugins={plugins} components={components} skipHtml={false}>
        {text}
      </ReactMarkdown>
    </div>
  );
});
