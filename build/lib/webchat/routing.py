from conversations.routing import websocket_urlpatterns as conversation_socket_urls

websocket_urlpatterns = [*conversation_socket_urls]
