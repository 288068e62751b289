// Safe Markdown: react-markdown without rehype-raw, so any HTML in an agent's answer or an artifact
// is shown as text and never becomes elements; javascript: and other unsafe URLs are dropped by
// react-markdown's default urlTransform. Links open in a new tab without an opener.

import { memo } from "react";
import ReactMarkdown, { type Components } from "react-markdown";
import remarkGfm from "remark-gfm";

const components: Components = {
  a: ({ node: _node, ...props }) => <a {...props} target="_blank" rel="noopener noreferrer nofollow" />,
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
