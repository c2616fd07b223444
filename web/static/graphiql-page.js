// Starts GraphiQL against this server's /graphql. A token signed in on the settings page
// (sessionStorage of this origin) prefills the Authorization header; otherwise add
// {"Authorization": "Bearer <token>"} in the headers pane.
(function () {
  "use strict";
  var token = null;
  try {
    token = window.sessionStorage.getItem("tocsin.token");
  } catch (e) {
    token = null;
  }
  var headers = token ? JSON.stringify({ Authorization: "Bearer " + token }, null, 2) : "";
  var fetcher = window.GraphiQL.createFetcher({ url: window.location.origin + "/graphql" });
  var root = window.ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    window.React.createElement(window.GraphiQL, {
      fetcher: fetcher,
      defaultHeaders: headers,
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: true,
    })
  );
})();
