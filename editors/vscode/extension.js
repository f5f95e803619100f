// The bmad extension: starts `bmad lsp` over stdio and hands .bmad documents to it.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("bmad");
  const [command, ...args] = config.get("server.command", ["bmad", "lsp"]);
  const serverOptions = { command, args, transport: TransportKind.stdio };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "bmad" }, { scheme: "untitled", language: "bmad" }],
    synchronize: {
      configurationSection: "bmad",
      // imported files changed on disk (by git, another editor): the server re-checks dependents
      fileEvents: vscode.workspace.createFileSystemWatcher("**/*.bmad"),
    },
    initializationOptions: {
      bmad: {
        inlayHints: { cost: config.get("inlayHints.cost", true) },
        diagnostics: { delayMs: config.get("diagnostics.delayMs", 150) },
      },
    },
  };
  client = new LanguageClient("bmad", "bmad language server", serverOptions, clientOptions);
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
