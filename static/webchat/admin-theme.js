// The admin follows the theme chosen in the chat: the server reads its cookie and names it
// on this script's tag; Django's admin colours itself by <html data-theme>. Run in <head>,
// before the page is drawn, so that it is never drawn in the other theme first.
document.documentElement.dataset.theme = document.currentScript.dataset.theme;
