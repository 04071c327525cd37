// Attaching images to a message: the file button, dropping files on the composer, and
// pasting them. The chosen files are kept in the form's <input type=file multiple> (set
// through a DataTransfer), so htmx sends them with the text. Each shows as a removable
// thumbnail; they are cleared once the message is sent and kept when it is refused. An
// edited message's form collects added images the same way. The server checks every file;
// this only collects them.
(function () {
  "use strict";

  // Per file input: the files chosen, each {file, url} (an object URL for the thumbnail).
  // The composer's input is #composer-images; an edited message's form has one as well,
  // beside the images the message already has (which its Remove boxes take away).
  const chosen = new WeakMap();
  // The words shown here, in the page's language (the server renders them: base.html).
  const words = JSON.parse(document.getElementById("script-words")?.textContent || "{}");
  const t = (english) => words[english] || english;

  const form = () => document.getElementById("composer");
  const fileInput = () => document.getElementById("composer-images");

  const filesOf = (input) => chosen.get(input) || [];
  const textOf = (someForm) => someForm.querySelector("textarea[name=text]");

  // Images alone are a message too: the ones chosen, and an edited message's kept ones.
  function hasImages(someForm) {
    const input = someForm.querySelector("input[type=file][name=images]");
    const kept = someForm.querySelectorAll(".edit-image input[name=remove]:not(:checked)");
    return (input !== null && filesOf(input).length > 0) || kept.length > 0;
  }

  function carriesFiles(event) {
    return Boolean(event.dataTransfer) && Array.from(event.dataTransfer.types).includes("Files");
  }

  function render(input) {
    const transfer = new DataTransfer();
    filesOf(input).forEach((item) => transfer.items.add(item.file));
    input.files = transfer.files;
    const list = input.form.querySelector(".composer-attachments[data-new-images]");
    list.replaceChildren(...filesOf(input).map((item) => thumbnail(input, item)));
    textOf(input.form).required = !hasImages(input.form);
  }

  function thumbnail(input, item) {
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
      chosen.set(input, filesOf(input).filter((other) => other !== item));
      const text = textOf(input.form);
      render(input);
      text.focus();
    });
    tile.append(image, remove);
    return tile;
  }

  function attach(input, files) {
    const added = Array.from(files, (file) => ({ file, url: URL.createObjectURL(file) }));
    chosen.set(input, filesOf(input).concat(added));
    render(input);
  }

  function clear(input) {
    filesOf(input).forEach((item) => URL.revokeObjectURL(item.url));
    chosen.set(input, []);
    render(input);
  }

  // The file button replaces the input's files with the new choice: add it to the others.
  // Ticking an edited message's Remove box hides its image (CSS): the text may be needed now.
  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.matches("input[type=file][name=images]")) {
      attach(target, target.files);
    } else if (target.matches(".edit-image input[name=remove]")) {
      const text = textOf(target.form);
      text.required = !hasImages(target.form);
      text.focus();
    }
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
    if (form()?.contains(event.target)) attach(fileInput(), event.dataTransfer.files);
  });

  // Pasted images (a screenshot, a copied picture) are attached; pasted text is left alone.
  document.addEventListener("paste", (event) => {
    if (!form()) return;
    const field = event.target.closest && event.target.closest("input, textarea, [contenteditable]");
    if (field && !form().contains(field)) return;
    const files = Array.from(event.clipboardData?.files || []);
    if (files.length === 0) return;
    event.preventDefault();
    attach(fileInput(), files);
  });

  // chat.js sends on Enter only when there is text; images alone are sent too.
  document.addEventListener("keydown", (event) => {
    const textarea = event.target;
    if (!textarea.matches?.("textarea[data-enter-sends]") || event.key !== "Enter") return;
    if (event.shiftKey || event.isComposing || event.keyCode === 229) return;
    if (textarea.form.classList.contains("is-replying")) return;
    if (textarea.value.trim() === "" && hasImages(textarea.form)) textarea.form.requestSubmit();
  });

  document.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.elt.id === "composer" && event.detail.successful) clear(fileInput());
  });
})();
