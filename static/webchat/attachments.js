// Attaching images to a message: the file button, dropping files on the composer, and
// pasting them. The chosen files are kept in the form's <input type=file multiple> (set
// through a DataTransfer), so htmx sends them with the text. Each shows as a removable
// thumbnail; they are cleared once the message is sent and kept when it is refused. The
// server checks every file; this only collects them.
(function () {
  "use strict";

  let attached = []; // {file, url}: url is an object URL for the thumbnail
  // The words shown here, in the page's language (the server renders them: base.html).
  const words = JSON.parse(document.getElementById("script-words")?.textContent || "{}");
  const t = (english) => words[english] || english;

  const form = () => document.getElementById("composer");
  const fileInput = () => document.getElementById("composer-images");
  const list = () => document.getElementById("composer-attachments");

  function carriesFiles(event) {
    return Boolean(event.dataTransfer) && Array.from(event.dataTransfer.types).includes("Files");
  }

  function render() {
    const input = fileInput();
    if (!input) return;
    const transfer = new DataTransfer();
    attached.forEach((item) => transfer.items.add(item.file));
    input.files = transfer.files;
    list().replaceChildren(...attached.map(thumbnail));
    // Images alone are a message too.
    document.getElementById("composer-text").required = attached.length === 0;
  }

  function thumbnail(item) {
    const tile = document.createElement("li");
    tile.className = "composer-attachment";
    tile.title = item.file.name;
    const image = document.createElement("img");
    image.alt = item.file.name;
    image.src = item.url;
    // Not a picture the browser can show (the server will say what is wrong): show the name.
    image.addEventListener("error", () => {
      const name = document.createElement("span");
      name.className = "composer-attachment-name";
      name.textContent = item.file.name;
      image.replaceWith(name);
    });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "composer-attachment-remove";
    remove.setAttribute("aria-label", t("Remove %(name)s").replace("%(name)s", item.file.name));
    remove.textContent = "×";
    remove.addEventListener("click", () => {
      URL.revokeObjectURL(item.url);
      attached = attached.filter((other) => other !== item);
      render();
      document.getElementById("composer-text").focus();
    });
    tile.append(image, remove);
    return tile;
  }

  function attach(files) {
    for (const file of files) attached.push({ file, url: URL.createObjectURL(file) });
    render();
  }

  function clear() {
    attached.forEach((item) => URL.revokeObjectURL(item.url));
    attached = [];
    render();
  }

  // The file button replaces the input's files with the new choice: add it to the others.
  document.addEventListener("change", (event) => {
    if (event.target.id === "composer-images") attach(Array.from(event.target.files));
  });

  // A file dropped anywhere but the composer must not make the browser leave the page.
  document.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    const onComposer = Boolean(form()?.contains(event.target));
    event.dataTransfer.dropEffect = onComposer ? "copy" : "none";
    form()?.classList.toggle("is-dropping", onComposer);
  });

  document.addEventListener("dragleave", (event) => {
    if (!form()?.contains(event.relatedTarget)) form()?.classList.remove("is-dropping");
  });

  document.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    form()?.classList.remove("is-dropping");
    if (form()?.contains(event.target)) attach(Array.from(event.dataTransfer.files));
  });

  // Pasted images (a screenshot, a copied picture) are attached; pasted text is left alone.
  document.addEventListener("paste", (event) => {
    if (!form()) return;
    const field = event.target.closest && event.target.closest("input, textarea, [contenteditable]");
    if (field && !form().contains(field)) return;
    const files = Array.from(event.clipboardData?.files || []);
    if (files.length === 0) return;
    event.preventDefault();
    attach(files);
  });

  // chat.js sends on Enter only when there is text; images alone are sent too.
  document.addEventListener("keydown", (event) => {
    const textarea = event.target;
    if (textarea.id !== "composer-text" || event.key !== "Enter") return;
    if (event.shiftKey || event.isComposing || event.keyCode === 229) return;
    if (textarea.value.trim() === "" && attached.length > 0) textarea.form.requestSubmit();
  });

  document.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.elt.id === "composer" && event.detail.successful) clear();
  });
})();
