-- bmad for Neovim (0.10+): filetype detection and the built-in LSP client attached to `bmad lsp`.
-- Put this file in ~/.config/nvim/plugin/ (or require it from init.lua).

vim.filetype.add({ extension = { bmad = "bmad" } })

vim.api.nvim_create_autocmd("FileType", {
  pattern = "bmad",
  callback = function(args)
    vim.bo[args.buf].commentstring = "# %s"
    vim.lsp.start({
      name = "bmad",
      cmd = { "bmad", "lsp" },
      root_dir = vim.fs.root(args.buf, { ".git", "bmad.toml" }) or vim.fs.dirname(args.file),
      init_options = {
        bmad = { inlayHints = { cost = true }, diagnostics = { delayMs = 150 } },
      },
    })
  end,
})

-- Optional: estimated cost per task as inlay hints, and format on save.
vim.api.nvim_create_autocmd("LspAttach", {
  callback = function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if not client or client.name ~= "bmad" then
      return
    end
    if client.server_capabilities.inlayHintProvider then
      vim.lsp.inlay_hint.enable(true, { bufnr = args.buf })
    end
    vim.api.nvim_create_autocmd("BufWritePre", {
      buffer = args.buf,
      callback = function()
        vim.lsp.buf.format({ bufnr = args.buf, name = "bmad" })
      end,
    })
  end,
})
