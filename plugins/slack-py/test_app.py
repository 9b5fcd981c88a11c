"""Unit tests of the Slack plugin against `courier_sdk.testing.MockHost`
(`./dev test` runs them: `python3 -m unittest` with `guest-sdk/python` on
the path). The real host and Slack's OpenAPI document check it in
`tests/all/vendors/slack.rs`."""

import unittest

import app
from courier_sdk import Failed
from courier_sdk.testing import Expect, MockHost, Reply


class PostMessage(unittest.TestCase):
    def test_posts_the_form_slack_documents(self):
        with MockHost() as host:
            host.expect(Expect.post("/chat.postMessage").connection("slack")
                        .form([("channel", "C1"), ("text", "héllo"),
                               ("blocks", '[{"type":"divider"}]'), ("thread_ts", "1.5")])
                        .reply(Reply.json(200, {"ok": True, "channel": "C1", "ts": "2.5"})))
            posted = app.post_message({"channel": "C1", "text": "héllo",
                                       "blocks": [{"type": "divider"}], "thread_ts": "1.5"})
        self.assertEqual(posted, {"channel": "C1", "ts": "2.5"})

    def test_ok_false_fails_naming_slack_s_error_and_scope(self):
        with MockHost() as host:
            host.expect(Expect.post("/chat.postMessage").reply(Reply.json(
                200, {"ok": False, "error": "missing_scope", "needed": "chat:write"})))
            with self.assertRaises(Failed) as failed:
                app.post_message({"channel": "C1", "text": "hi"})
        self.assertEqual(str(failed.exception), "Slack answered ok: false, error "
                         "`missing_scope` (needs scope `chat:write`)")


class ListConversations(unittest.TestCase):
    def test_one_page_and_then_the_host_s_page_loop(self):
        with MockHost() as host:
            host.expect(Expect.get("/conversations.list").connection("slack")
                        .query_exactly([("types", "private_channel"),
                                        ("exclude_archived", "true"), ("limit", "2")])
                        .reply(Reply.json(200, {
                            "ok": True, "channels": [{"id": "C1", "name": "general"}],
                            "response_metadata": {"next_cursor": "dXNlcjpVMDYx"}})))
            host.expect(Expect.get("/conversations.list").query("cursor", "dXNlcjpVMDYx")
                        .reply(Reply.json(200, [{"id": "C2", "is_private": True}])
                               .header("courier-pagination", "max-pages")))
            listed = app.list_conversations({"types": "private_channel",
                                             "exclude_archived": True, "page_size": 2,
                                             "max_pages": 3})
            paged = host.requests()[1].wit.pagination
        self.assertEqual(listed, {"conversations": [
            {"id": "C1", "name": "general", "is_private": False, "is_archived": False},
            {"id": "C2", "name": None, "is_private": True, "is_archived": False},
        ], "pagination": "max-pages"})
        self.assertEqual((paged.items_path, paged.max_pages), ("channels", 2))
        self.assertEqual(paged.style.value.path, "response_metadata.next_cursor")

    def test_a_single_page_sends_one_request(self):
        with MockHost() as host:
            host.expect(Expect.get("/conversations.list").query("types", "public_channel")
                        .reply(Reply.json(200, {"ok": True, "channels": []})))
            listed = app.list_conversations({})
            self.assertEqual(len(host.requests()), 1)
            self.assertEqual(host.requests()[0].wit.retry.max_attempts, 3)
        self.assertEqual(listed, {"conversations": [], "pagination": "complete"})

    def test_a_send_error_is_raised_as_the_host_gave_it(self):
        with MockHost() as host:
            host.expect(Expect.get("/conversations.list").reply(Reply.error("timeout", "total")))
            with self.assertRaisesRegex(Exception, r"timed out \(total\)") as raised:
                app.list_conversations({})
        self.assertEqual(raised.exception.kind, "timeout")


if __name__ == "__main__":
    unittest.main()
