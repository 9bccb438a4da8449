// Live reload for `dossier preview`: the server sends the current generation of the files on
// connect and after every change; a page showing an older generation reloads itself.
(() => {
  const shown = document.currentScript.dataset.generation;
  const events = new EventSource("/_preview/events");
  events.onmessage = (event) => {
    if (event.data !== shown) {
      events.close();
      location.reload();
    }
  };
})();
