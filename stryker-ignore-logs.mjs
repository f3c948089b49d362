// StrykerJS ignorer: no mutants inside log(...) calls. A log line's text and fields are for
// people reading logs, not behaviour the unit tests pin; mutating them only adds noise to the score.
export const strykerPlugins = [
  {
    kind: 'Ignore',
    name: 'log-lines',
    factory: () => ({
      shouldIgnore(path) {
        if (!path.isCallExpression()) return undefined;
        const callee = path.node.callee;
        const isLog =
          (callee.type === 'Identifier' && callee.name === 'log') ||
          (callee.type === 'MemberExpression' && callee.property.type === 'Identifier' && ['debug', 'info', 'warn', 'error', 'fatal'].includes(callee.property.name) && callee.object.type === 'MemberExpression' && callee.object.property.type === 'Identifier' && callee.object.property.name === 'log');
        return isLog ? 'a log line: text for people, not behaviour' : undefined;
      },
    }),
  },
];
