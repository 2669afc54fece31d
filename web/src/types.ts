// Shapes of the HTTP API (docs/API.md) and the WebSocket protocol (docs/PROTOCOL.md).

export interface PublicUser {
  id: number;
  username: string;
  nickname: string;
  avatar_url: string | null;
  bio: string | null;
  phone?: string | null;
}

export interface OwnUser extends PublicUser {
  phone: string | null;
  created_at: number;
}

export interface Login {
  token: string;
  device_id: number;
  expires_at: number;
  user: OwnUser;
}

export interface Device {
  id: number;
  name: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  current: boolean;
}

export type RequestStatus = 'pending' | 'ignored' | 'accepted' | 'rejected' | 'expired';

export interface FriendRequest {
  id: number;
  from_user_id: number;
  to_user_id: number;
  message: string;
  status: RequestStatus;
  created_at: number;
  updated_at: number;
  expires_at: number;
  user: PublicUser;
}

export interface Category {
  id: number;
  name: string;
  is_default: boolean;
  count?: number;
  created_at: number;
}

export interface Friend {
  user: PublicUser;
  remark: string | null;
  category: { id: number; name: string };
  since: number;
  dnd: boolean;
  online: boolean;
}

export type Role = 'owner' | 'admin' | 'member';

export interface Group {
  id: number;
  conv: string;
  name: string;
  announcement: string | null;
  avatar_url: string | null;
  owner_id: number;
  mute_all: boolean;
  invite_policy: 'members' | 'admins';
  dissolved: boolean;
  member_count: number;
  my_role: Role;
  created_at: number;
}

export interface Member {
  user: PublicUser;
  role: Role;
  nickname: string | null;
  muted_until: number | null;
  joined_at: number;
}

export interface Invite {
  token: string;
  url: string;
  join_url: string;
  group_id: number;
  expires_at: number | null;
  max_uses: number | null;
  uses: number;
}

export interface InvitePreview {
  group_id: number;
  name: string;
  avatar_url: string | null;
  member_count: number;
  expires_at: number | null;
}

export interface Conversation {
  conv: string;
  kind: 'direct' | 'group';
  peer: PublicUser | null;
  last_message: { seq: number; ts: number; from: number | null; preview: string | null } | null;
  max_seq: number;
  read_seq: number;
  unread: number;
  pinned: boolean;
  dnd: boolean;
  mentioned: boolean;
  group: { id: number; name: string; dissolved: boolean } | null;
  peer_read_seq?: number;
  peer_delivered_seq?: number;
}

/** A stored message, as in `msg`, `synced` and history pages. */
export interface Message {
  conv: string;
  seq: number;
  from: number;
  id: string;
  kind: 'text' | 'system';
  body?: string;
  ts: number;
  recalled?: boolean;
  mentions?: number[];
  mention_all?: boolean;
  /** The message this one replies to, as I see it. */
  reply?: Quote;
  /** A forward: who sent the original. */
  forwarded_from?: number;
  /** The file it carries (absent once recalled). */
  attachment?: Attachment;
  /** When its body was last edited (ms; the body is the latest). */
  edited_at?: number;
  /** Reactions per emoji (history and sync; live changes come as `reaction` frames). */
  reactions?: ReactionCount[];
}

/** What a reader sees of the message a reply quotes. */
export interface Quote {
  seq: number;
  state: 'visible' | 'recalled' | 'deleted' | 'not_visible';
  from?: number;
  preview?: string | null;
  attachment?: AttachmentKind;
}

export type AttachmentKind = 'image' | 'voice' | 'file';

/** An upload (`POST /api/v1/uploads`), as a message carries it. */
export interface Attachment {
  id: string;
  kind: AttachmentKind;
  name: string;
  mime: string;
  size: number;
  width?: number;
  height?: number;
  thumb?: boolean;
}

export interface ReactionCount {
  emoji: string;
  count: number;
  mine?: boolean;
}

export interface Page<T> {
  items: T[];
  page: number;
  size: number;
  has_more: boolean;
}

export interface History {
  conv: string;
  messages: Message[];
  has_more: boolean;
  max_seq: number;
}

/** Frames the server sends. */
export type ServerFrame =
  | { type: 'hello'; user_id: number; device_id: number; node: string; heartbeat_secs: number }
  | { type: 'ack'; id: string; conv: string; seq: number; ts: number }
  | ({ type: 'msg'; silent?: boolean; mentioned?: boolean } & Message)
  | { type: 'delivered'; conv: string; seq: number; by: number }
  | { type: 'read'; conv: string; seq: number; by: number }
  | { type: 'read_mark'; conv: string; seq: number; unread: number }
  | { type: 'recalled'; conv: string; seq: number }
  | { type: 'deleted'; conv: string; seq: number }
  | { type: 'edited'; conv: string; seq: number; body: string; edited_at: number }
  | { type: 'reaction'; conv: string; seq: number; user: number; emoji: string; on: boolean; at: number }
  | { type: 'typing'; conv: string; from: number }
  | ({ type: 'synced' } & History)
  | { type: 'presence'; user_id: number; online: boolean }
  | { type: 'event'; event: string; data: any }
  | { type: 'notice'; text: string; ts: number }
  | { type: 'pong'; nonce?: string }
  | { type: 'error'; code: string; message: string; id?: string };
