// The image viewer: a message's thumbnail opens its full image in a modal <dialog>, with
// the previous and next images of the same message (buttons, arrow keys, a swipe). Esc, the
// close button or a click beside the image closes it, and the focus goes back to the
// thumbnail. Without this script a thumbnail is a plain link to its image.
(function () {
  "use strict";

  const SWIPE_PIXELS = 50;
  let links = [];
  let index = 0;
  let opener = null;
  let swipeStart = null;

  const viewer = () => document.getElementById("image-viewer");

  function show(at) {
    const dialog = viewer();
    index = Math.max(0, Math.min(at, links.length - 1));
    const link = links[index];
    const image = dialog.querySelector(".image-viewer-image");
    image.src = link.href;
    image.alt = link.querySelector("img")?.alt || "";
    const position = links.length > 1 ? ` · ${index + 1} / ${links.length}` : "";
    dialog.querySelector(".image-viewer-caption").textContent = image.alt + position;
    dialog.querySelector("[data-viewer=previous]").disabled = index === 0;
    dialog.querySelector("[data-viewer=next]").disabled = index === links.length - 1;
    dialog.classList.toggle("is-single", links.length === 1);
  }

  function open(link) {
    const dialog = viewer();
    links = Array.from(link.closest(".message-images").querySelectorAll("a.message-image"));
    opener = link;
    show(links.indexOf(link));
    dialog.showModal();
    dialog.querySelector("[data-viewer=close]").focus();
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest?.(".message-images a.message-image");
    if (!link || !viewer()) return;
    // A click that asks for a new tab or window keeps doing so.
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    open(link);
  });

  document.addEventListener("DOMContentLoaded", () => {
    const dialog = viewer();
    if (!dialog) return;
    dialog.addEventListener("click", (event) => {
      const action = event.target.closest("[data-viewer]")?.dataset.viewer;
      if (action === "close" || event.target === dialog) dialog.close();
      else if (action === "previous") show(index - 1);
      else if (action === "next") show(index + 1);
    });
    dialog.addEventListener("keydown", (event) => {
      if (event.key === "ArrowLeft") show(index - 1);
      else if (event.key === "ArrowRight") show(index + 1);
      else return;
      event.preventDefault();
    });
    dialog.addEventListener("pointerdown", (event) => {
      if (event.pointerType !== "mouse") swipeStart = event.clientX;
    });
    dialog.addEventListener("pointerup", (event) => {
      if (swipeStart === null) return;
      const moved = event.clientX - swipeStart;
      swipeStart = null;
      if (Math.abs(moved) >= SWIPE_PIXELS) show(moved < 0 ? index + 1 : index - 1);
    });
    dialog.addEventListener("close", () => {
      dialog.querySelector(".image-viewer-image").removeAttribute("src");
      if (opener?.isConnected) opener.focus();
      opener = null;
    });
  });
})();
