//! What a call says: the sentence a display speaks and a phone shows, in Chinese and English.
//! Pure; shared by every edge that announces a call.

use serde::Serialize;

/// Texts for one call or pre-call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Announcement {
    pub text_zh: String,
    pub text_en: String,
}

/// "请 A012 号 张*三 到 3 诊室就诊" / "Number A012, 张*三, please go to Room 3".
pub fn call(number: &str, masked_name: &str, room_zh: &str, room_en: &str) -> Announcement {
    let who_zh = if masked_name.is_empty() { String::new() } else { format!(" {masked_name}") };
    let who_en = if masked_name.is_empty() { String::new() } else { format!(", {masked_name}") };
    let room_en = if room_en.is_empty() { room_zh } else { room_en };
    Announcement {
        text_zh: format!("请 {number} 号{who_zh} 到 {room_zh}就诊"),
        text_en: format!("Number {number}{who_en}, please go to {room_en}"),
    }
}

/// "You are next" (二次候诊).
pub fn pre_call(number: &str, queue_zh: &str, queue_en: &str) -> Announcement {
    let queue_en = if queue_en.is_empty() { queue_zh } else { queue_en };
    Announcement {
        text_zh: format!("请 {number} 号到{queue_zh}候诊区准备，下一位就是您"),
        text_en: format!("Number {number}: you are next at {queue_en}, please wait near the room"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn call_text_reads_as_a_nurse_would_say_it() {
        let a = super::call("A012", "张*三", "3 诊室", "Room 3");
        assert_eq!(a.text_zh, "请 A012 号 张*三 到 3 诊室就诊");
        assert_eq!(a.text_en, "Number A012, 张*三, please go to Room 3");
    }
}
